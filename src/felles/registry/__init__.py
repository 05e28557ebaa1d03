"""The registers behind "once only": people, businesses, roles, contact details, agencies."""
