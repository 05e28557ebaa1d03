"""The shared page shell: layout, styles, languages, security headers, errors."""
