"""Word lists for the synthetic country: names, places, trades and agencies.

Plain tuples, kept apart from the generator so the logic stays readable. Order matters:
the generator draws by index, so reordering a list changes every seeded country.
"""

from __future__ import annotations

# fmt: off

# --- Given names, by sex and by the generation that used them most ----------------------

FEMALE_NAMES_OLD = (  # born before 1960
    "Anna", "Astrid", "Aud", "Bjørg", "Borghild", "Berit", "Bodil", "Dagny", "Eldbjørg",
    "Elin", "Ellen", "Else", "Erna", "Eva", "Gerd", "Grethe", "Gudrun", "Gunhild", "Gunn",
    "Hanna", "Haldis", "Helga", "Hjørdis", "Ingeborg", "Inger", "Ingrid", "Jorunn", "Johanne",
    "Karen", "Kari", "Kirsten", "Kjellaug", "Klara", "Laila", "Liv", "Magnhild", "Margit",
    "Margrethe", "Marie", "Marit", "Marta", "Målfrid", "Oddbjørg", "Oddny", "Olga",
    "Ragnhild", "Randi", "Reidun", "Ruth", "Sigrid", "Signe", "Sissel", "Solveig", "Svanhild",
    "Synnøve", "Torbjørg", "Tordis", "Turid", "Unni", "Valborg", "Vigdis", "Åse", "Aslaug",
    "Evy", "Wenche", "Anne", "Borgny", "Gro", "Grete", "Nora",
)
FEMALE_NAMES_MID = (  # born 1960-1989
    "Anette", "Anita", "Ann", "Anne", "Bente", "Camilla", "Cathrine", "Elisabeth", "Eli",
    "Ellen", "Gro", "Guro", "Hege", "Heidi", "Helene", "Hilde", "Ida", "Ingrid", "Irene",
    "Janne", "Kari", "Katrine", "Kjersti", "Kristin", "Kristine", "Lene", "Linda", "Line",
    "Lise", "Marianne", "Marit", "Mette", "Merete", "Monica", "Nina", "Randi", "Silje",
    "Siri", "Sissel", "Stine", "Susanne", "Tone", "Tonje", "Torill", "Trine", "Turid",
    "Tove", "Vibeke", "Wenche", "Åshild", "Cecilie", "Hanne", "Ingvild", "Karianne",
    "Kirsti", "Mona", "Ragnhild", "Renate", "Sigrun", "Solfrid", "Unni", "Maren", "Marte",
    "Mari", "Hanna", "Therese", "Anja", "Eirin", "Kine", "Gunn",
)
FEMALE_NAMES_NEW = (  # born 1990 and later
    "Emma", "Nora", "Sofie", "Sophie", "Olivia", "Ella", "Ingrid", "Leah", "Sara", "Maja",
    "Frida", "Emilie", "Ida", "Anna", "Thea", "Julie", "Hedda", "Amalie", "Vilde", "Tiril",
    "Selma", "Aurora", "Astrid", "Mia", "Linnea", "Live", "Hanna", "Jenny", "Martine",
    "Marie", "Ada", "Alma", "Ellinor", "Eva", "Frøya", "Henriette", "Iben", "Ine",
    "Johanne", "Karoline", "Kaja", "Lea", "Lotte", "Lykke", "Mathilde", "Mathea", "Mille",
    "Mina", "Oda", "Othilie", "Pernille", "Ronja", "Sigrid", "Silje", "Solveig", "Synne",
    "Tuva", "Victoria", "Vår", "Eline", "Malin", "Helene", "Andrea", "Camilla", "Marthe",
    "Kristine", "Guro", "Signe", "Agnes", "Ylva",
)
MALE_NAMES_OLD = (
    "Alf", "Arne", "Arnfinn", "Asbjørn", "Birger", "Bjarne", "Bjørn", "Egil", "Einar",
    "Erling", "Finn", "Gunnar", "Halvor", "Hans", "Harald", "Helge", "Henry", "Ivar",
    "Jens", "Johan", "Johannes", "Jon", "Kåre", "Karl", "Kjell", "Knut", "Kristian", "Leif",
    "Magnus", "Nils", "Odd", "Olav", "Ole", "Oskar", "Per", "Ragnar", "Reidar", "Roald",
    "Rolf", "Sigurd", "Sverre", "Svein", "Tor", "Torbjørn", "Tore", "Trygve", "Arvid",
    "Gudmund", "Håkon", "Ingvar", "Jakob", "Jostein", "Kolbjørn", "Martin", "Oddvar",
    "Olaf", "Peder", "Ragnvald", "Sigmund", "Steinar", "Terje", "Thor", "Torleif", "Aksel",
    "Edvard", "Gustav", "Hallvard", "Ingolf", "Osvald", "Torvald",
)
MALE_NAMES_MID = (
    "Anders", "Andreas", "Arild", "Atle", "Bjørnar", "Dag", "Eirik", "Erik", "Espen",
    "Frode", "Geir", "Glenn", "Gøran", "Hans", "Harald", "Helge", "Henning", "Hans Petter",
    "Jan", "Jon", "Jørgen", "Kenneth", "Kjetil", "Knut", "Kristian", "Lars", "Magne",
    "Marius", "Martin", "Morten", "Odd", "Ole", "Ove", "Per", "Petter", "Ronny", "Rune",
    "Stein", "Steinar", "Stian", "Svein", "Sindre", "Terje", "Thomas", "Tom", "Tommy",
    "Tor", "Trond", "Trygve", "Vegard", "Øystein", "Øyvind", "Audun", "Christian", "Eivind",
    "Fredrik", "Gaute", "Gisle", "Hallgeir", "Idar", "Joakim", "Kristoffer", "Leif",
    "Nils", "Ola", "Robert", "Roger", "Sverre", "Torstein", "Vidar",
)
MALE_NAMES_NEW = (
    "Jakob", "Emil", "Noah", "Oliver", "Filip", "William", "Lucas", "Liam", "Henrik",
    "Oskar", "Aksel", "Theodor", "Elias", "Kasper", "Magnus", "Johannes", "Isak", "Mathias",
    "Tobias", "Olav", "Sander", "Jonas", "Markus", "Adrian", "Håkon", "Sebastian",
    "Kristian", "Martin", "Benjamin", "Even", "Fredrik", "Herman", "Iver", "Jørgen",
    "Kristoffer", "Leon", "Ludvig", "Mikkel", "Nikolai", "Ole", "Peder", "Sigurd",
    "Simen", "Sindre", "Sivert", "Storm", "Syver", "Teodor", "Tiago", "Tor", "Torstein",
    "Trym", "Ulrik", "Vetle", "Vilmer", "Vebjørn", "Alexander", "Andreas", "Daniel",
    "Eirik", "Erik", "Gabriel", "Haakon", "Jens", "Johan", "Marius", "Odin", "Petter",
    "Samuel", "Eskil",
)
DOUBLE_FEMALE_NAMES = (
    "Anne Marie", "Anne Lise", "Mari Ann", "Kari Anne", "Eva Marie", "Inger Lise",
    "Ann Kristin", "Anne Grete", "Ellen Marie", "Ida Marie", "Maria Elisabeth",
    "Sara Emilie", "Anne Karin", "Liv Berit", "Tone Merete", "Hanne Kristin",
)
DOUBLE_MALE_NAMES = (
    "Per Olav", "Lars Erik", "Jan Erik", "Ole Martin", "Karl Johan", "Hans Petter",
    "Tor Arne", "Jon Arne", "Stein Erik", "Knut Arild", "Jens Petter", "Ole Kristian",
    "Carl Fredrik", "Tor Inge", "Nils Petter", "Hans Christian", "Per Kristian",
)

# --- Family names: the commonest first (the generator favours the head of the list) ----

FAMILY_NAMES = (
    "Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen",
    "Kristiansen", "Jensen", "Karlsen", "Johnsen", "Pettersen", "Eriksen", "Berg", "Haugen",
    "Hagen", "Johannessen", "Andreassen", "Jacobsen", "Dahl", "Jørgensen", "Halvorsen",
    "Henriksen", "Lund", "Sørensen", "Jakobsen", "Moen", "Gundersen", "Iversen", "Strand",
    "Solberg", "Svendsen", "Eide", "Knutsen", "Martinsen", "Paulsen", "Bakken",
    "Kristoffersen", "Mathisen", "Lie", "Amundsen", "Rasmussen", "Lunde", "Solheim",
    "Berge", "Moe", "Nygård", "Bakke", "Kristensen", "Fredriksen", "Holm", "Lien", "Hauge",
    "Christensen", "Andresen", "Nielsen", "Knudsen", "Evensen", "Sæther", "Aas", "Myhre",
    "Hanssen", "Haugland", "Thomassen", "Sivertsen", "Simonsen", "Danielsen", "Berntsen",
    "Sandvik", "Rønning", "Arnesen", "Antonsen", "Næss", "Vik", "Haug", "Ellingsen",
    "Thorsen", "Edvardsen", "Birkeland", "Isaksen", "Gulbrandsen", "Ruud", "Aasen", "Strøm",
    "Myklebust", "Tangen", "Ødegård", "Eliassen", "Helland", "Bøe", "Jenssen", "Aune",
    "Mikkelsen", "Tveit", "Brekke", "Abrahamsen", "Madsen", "Bjørnstad", "Fossum", "Engen",
    "Aasland", "Hovland", "Nesheim", "Tveiten", "Holmen", "Rød", "Skogen", "Dale", "Fjeld",
    "Grønning", "Hegge", "Hovden", "Kvam", "Lia", "Løken", "Nordby", "Opsahl", "Rustad",
    "Sletten", "Stene", "Tronstad", "Ulvestad", "Vatne", "Vold", "Aarseth", "Bakkeli",
    "Brenna", "Dahle", "Flaten", "Gjerde", "Halse", "Hammer", "Hjelle", "Hustad",
    "Kolstad", "Krogh", "Lindberg", "Lyngstad", "Moum", "Nordli", "Olsrud", "Ramstad",
    "Rygg", "Seland", "Skaar", "Sunde", "Teigen", "Tofte", "Torp", "Vestre", "Øien",
    "Åsheim", "Aakre", "Bergheim", "Bjerke", "Bjørklund", "Blix", "Bolstad", "Borge",
    "Bratli", "Brenden", "Bruun", "Dalen", "Eng", "Ekeberg", "Erstad", "Fagerli",
    "Fjellheim", "Flatebø", "Foss", "Fredheim", "Furuseth", "Gran", "Grande", "Grimstad",
    "Haaland", "Hagland", "Hammerstad", "Haugan", "Heggelund", "Helgesen", "Helle", "Hoel",
    "Holstad", "Holter", "Hovde", "Husby", "Jensrud", "Karlsrud", "Kleven", "Knotten",
    "Kolberg", "Kvalheim", "Langeland", "Larsson", "Lindstad", "Lothe", "Lunder", "Løvås",
    "Mo", "Myrvold", "Nes", "Nordahl", "Nordvik", "Nyhus", "Ottesen", "Ous", "Rasch",
    "Reitan", "Ringstad", "Risa", "Rognes", "Rosseland", "Røed", "Sandberg", "Sandnes",
    "Schjelderup", "Sel", "Skjelbred", "Skog", "Skrede", "Slettebø", "Solli", "Stokke",
    "Storm", "Strømme", "Sundby", "Svela", "Syversen", "Tandberg", "Thune", "Tjelta",
    "Tollefsen", "Torgersen", "Trana", "Ueland", "Ulriksen", "Utne", "Varhaug", "Vestby",
    "Vinje", "Wiik", "Wold", "Østby", "Øverland", "Aarnes", "Aase", "Alme", "Aarvik",
    "Bergan", "Berget", "Bekkevold", "Eikeland", "Engebretsen", "Enger", "Fiskum", "Fure",
    "Gjertsen", "Grøtte", "Haugstad", "Heggem", "Hellesøy", "Herland", "Hetland",
    "Holte", "Kjos", "Kleppe", "Kvalvik", "Langset", "Lervik", "Lillehaug", "Lome",
    "Midtbø", "Mjelde", "Njå", "Nordheim", "Oftedal", "Omland", "Rekdal", "Rolland",
    "Sele", "Sivertsrud", "Skjæveland", "Soltvedt", "Stavland", "Steinsland", "Stølen",
    "Sæle", "Tvedt", "Tjøstheim", "Vaage", "Vestvik", "Vikse", "Øvrebø", "Nguyen", "Ali",
    "Ahmed", "Khan", "Hussain",
)

# --- People who moved here: citizenship share (per 1000 residents) and names ----------
# Shares follow the largest groups of foreign citizens living in Norway.

FOREIGN_CITIZENSHIP_WEIGHTS = (
    ("PL", 20), ("UA", 13), ("LT", 8), ("SE", 7), ("SY", 5), ("DE", 5), ("RO", 4),
    ("DK", 4), ("ER", 3), ("PH", 3), ("IN", 3), ("SO", 2), ("GB", 2), ("US", 2), ("TH", 2),
    ("AF", 2), ("LV", 2),
)
# Citizens of these countries often work here on a D-number without settling.
D_NUMBER_COUNTRIES = ("PL", "LT", "LV", "SE", "DK", "DE", "RO", "UA", "GB")

# country -> (female given names, male given names, family names as (male, female) forms)
FOREIGN_NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[tuple[str, str], ...]]] = {
    "PL": (
        ("Anna", "Katarzyna", "Magdalena", "Agnieszka", "Joanna", "Ewa", "Monika", "Natalia",
         "Aleksandra", "Zofia", "Julia", "Maja"),
        ("Piotr", "Krzysztof", "Tomasz", "Paweł", "Marcin", "Michał", "Łukasz", "Jakub",
         "Kamil", "Adam", "Mateusz", "Szymon"),
        (("Nowak", "Nowak"), ("Kowalski", "Kowalska"), ("Wiśniewski", "Wiśniewska"),
         ("Wójcik", "Wójcik"), ("Kowalczyk", "Kowalczyk"), ("Kamiński", "Kamińska"),
         ("Lewandowski", "Lewandowska"), ("Zieliński", "Zielińska"),
         ("Szymański", "Szymańska"), ("Woźniak", "Woźniak"), ("Dąbrowski", "Dąbrowska"),
         ("Kozłowski", "Kozłowska")),
    ),
    "UA": (
        ("Olena", "Iryna", "Natalia", "Oksana", "Tetiana", "Yulia", "Anastasia", "Kateryna",
         "Sofiia", "Viktoriia"),
        ("Oleksandr", "Andrii", "Serhii", "Dmytro", "Volodymyr", "Mykola", "Ivan", "Yurii",
         "Maksym", "Artem"),
        (("Melnyk", "Melnyk"), ("Shevchenko", "Shevchenko"), ("Bondarenko", "Bondarenko"),
         ("Kovalenko", "Kovalenko"), ("Boiko", "Boiko"), ("Tkachenko", "Tkachenko"),
         ("Kravchenko", "Kravchenko"), ("Koval", "Koval"), ("Oliinyk", "Oliinyk"),
         ("Shevchuk", "Shevchuk")),
    ),
    "LT": (
        ("Rūta", "Jurgita", "Laura", "Kristina", "Inga", "Asta", "Eglė", "Gabija", "Austėja"),
        ("Tomas", "Mindaugas", "Darius", "Andrius", "Marius", "Jonas", "Lukas", "Paulius",
         "Mantas"),
        (("Kazlauskas", "Kazlauskienė"), ("Jankauskas", "Jankauskienė"),
         ("Petrauskas", "Petrauskienė"), ("Stankevičius", "Stankevičienė"),
         ("Vasiliauskas", "Vasiliauskienė"), ("Žukauskas", "Žukauskienė"),
         ("Butkus", "Butkienė"), ("Paulauskas", "Paulauskienė")),
    ),
    "LV": (
        ("Anna", "Kristīne", "Laura", "Inese", "Ilze", "Līga"),
        ("Jānis", "Andris", "Mārtiņš", "Edgars", "Kārlis", "Raivis"),
        (("Bērziņš", "Bērziņa"), ("Kalniņš", "Kalniņa"), ("Ozoliņš", "Ozoliņa"),
         ("Jansons", "Jansone"), ("Liepiņš", "Liepiņa")),
    ),
    "SE": (
        ("Anna", "Eva", "Maria", "Karin", "Sara", "Emma", "Elin", "Linnéa", "Maja", "Ebba"),
        ("Erik", "Lars", "Karl", "Anders", "Johan", "Per", "Oscar", "Axel", "Viktor", "Hugo"),
        (("Andersson", "Andersson"), ("Johansson", "Johansson"), ("Karlsson", "Karlsson"),
         ("Nilsson", "Nilsson"), ("Eriksson", "Eriksson"), ("Larsson", "Larsson"),
         ("Olsson", "Olsson"), ("Persson", "Persson"), ("Svensson", "Svensson"),
         ("Lindqvist", "Lindqvist")),
    ),
    "DK": (
        ("Mette", "Hanne", "Susanne", "Louise", "Camilla", "Freja", "Ida", "Sofie"),
        ("Jens", "Niels", "Søren", "Rasmus", "Mikkel", "Frederik", "Mads", "Christian"),
        (("Jensen", "Jensen"), ("Nielsen", "Nielsen"), ("Hansen", "Hansen"),
         ("Pedersen", "Pedersen"), ("Rasmussen", "Rasmussen"), ("Sørensen", "Sørensen"),
         ("Christensen", "Christensen"), ("Mortensen", "Mortensen")),
    ),
    "DE": (
        ("Julia", "Anna", "Katharina", "Sabine", "Stefanie", "Lena", "Laura", "Hannah"),
        ("Thomas", "Michael", "Stefan", "Andreas", "Jan", "Felix", "Lukas", "Maximilian"),
        (("Müller", "Müller"), ("Schmidt", "Schmidt"), ("Schneider", "Schneider"),
         ("Fischer", "Fischer"), ("Weber", "Weber"), ("Meyer", "Meyer"),
         ("Wagner", "Wagner"), ("Becker", "Becker"), ("Hoffmann", "Hoffmann")),
    ),
    "RO": (
        ("Maria", "Elena", "Ioana", "Andreea", "Alexandra", "Mihaela", "Ana"),
        ("Andrei", "Alexandru", "Ion", "Mihai", "Gheorghe", "Florin", "Adrian"),
        (("Popescu", "Popescu"), ("Ionescu", "Ionescu"), ("Popa", "Popa"),
         ("Dumitru", "Dumitru"), ("Stan", "Stan"), ("Stoica", "Stoica"),
         ("Gheorghe", "Gheorghe")),
    ),
    "SY": (
        ("Fatima", "Aya", "Rama", "Lana", "Maryam", "Nour", "Sara", "Rasha", "Hiba"),
        ("Mohammad", "Ahmad", "Khaled", "Omar", "Ali", "Hussein", "Yousef", "Rami", "Samer"),
        (("Al-Ahmad", "Al-Ahmad"), ("Haddad", "Haddad"), ("Khalil", "Khalil"),
         ("Ibrahim", "Ibrahim"), ("Hassan", "Hassan"), ("Mustafa", "Mustafa"),
         ("Al-Hamdan", "Al-Hamdan"), ("Saleh", "Saleh")),
    ),
    "ER": (
        ("Helen", "Senait", "Yordanos", "Selam", "Rahel", "Mebrat"),
        ("Yonas", "Tesfay", "Dawit", "Samuel", "Berhane", "Kidane"),
        (("Tesfamariam", "Tesfamariam"), ("Ghebremedhin", "Ghebremedhin"),
         ("Haile", "Haile"), ("Kidane", "Kidane"), ("Tekle", "Tekle"),
         ("Woldemichael", "Woldemichael")),
    ),
    "PH": (
        ("Maria", "Jocelyn", "Rowena", "Marites", "Cristina", "Angelica", "Rosalie"),
        ("Jose", "Mark", "John Paul", "Rodel", "Ramon", "Jerome", "Christian"),
        (("Santos", "Santos"), ("Reyes", "Reyes"), ("Cruz", "Cruz"), ("Bautista", "Bautista"),
         ("Garcia", "Garcia"), ("Mendoza", "Mendoza"), ("Villanueva", "Villanueva")),
    ),
    "IN": (
        ("Priya", "Ananya", "Divya", "Lakshmi", "Pooja", "Neha", "Kavya"),
        ("Rahul", "Arjun", "Vikram", "Sanjay", "Amit", "Rohan", "Karthik"),
        (("Sharma", "Sharma"), ("Patel", "Patel"), ("Singh", "Singh"), ("Kumar", "Kumar"),
         ("Reddy", "Reddy"), ("Nair", "Nair"), ("Iyer", "Iyer")),
    ),
    "SO": (
        ("Amina", "Hodan", "Fadumo", "Sahra", "Hibo", "Asha", "Khadija"),
        ("Abdi", "Mohamed", "Hassan", "Abdullahi", "Ahmed", "Yusuf", "Omar"),
        (("Abdi", "Abdi"), ("Mohamed", "Mohamed"), ("Hassan", "Hassan"), ("Warsame", "Warsame"),
         ("Farah", "Farah"), ("Jama", "Jama"), ("Osman", "Osman")),
    ),
    "GB": (
        ("Sarah", "Emily", "Charlotte", "Emma", "Sophie", "Rachel", "Hannah"),
        ("James", "Oliver", "Thomas", "Daniel", "Matthew", "George", "Harry"),
        (("Smith", "Smith"), ("Jones", "Jones"), ("Taylor", "Taylor"), ("Brown", "Brown"),
         ("Wilson", "Wilson"), ("Evans", "Evans"), ("Walker", "Walker")),
    ),
    "US": (
        ("Jennifer", "Jessica", "Ashley", "Emily", "Megan", "Lauren", "Madison"),
        ("Michael", "Christopher", "Joshua", "Matthew", "Ryan", "Tyler", "Brandon"),
        (("Johnson", "Johnson"), ("Williams", "Williams"), ("Miller", "Miller"),
         ("Davis", "Davis"), ("Anderson", "Anderson"), ("Peterson", "Peterson"),
         ("Olson", "Olson")),
    ),
    "TH": (
        ("Siriporn", "Malee", "Pranee", "Wanida", "Kanya", "Nok", "Ploy"),
        ("Somchai", "Somsak", "Prasert", "Anan", "Chai", "Kittisak", "Niran"),
        (("Saetang", "Saetang"), ("Srisuk", "Srisuk"), ("Wongsawat", "Wongsawat"),
         ("Chaiyaporn", "Chaiyaporn"), ("Boonmee", "Boonmee"), ("Thongchai", "Thongchai")),
    ),
    "AF": (
        ("Zahra", "Maryam", "Fatima", "Shabnam", "Mariam", "Parwana", "Nargis"),
        ("Ahmad", "Mohammad", "Ali", "Hamid", "Mustafa", "Reza", "Jawad"),
        (("Ahmadi", "Ahmadi"), ("Hosseini", "Hosseini"), ("Rahimi", "Rahimi"),
         ("Mohammadi", "Mohammadi"), ("Karimi", "Karimi"), ("Sultani", "Sultani"),
         ("Noori", "Noori")),
    ),
}
# Partners from abroad in mixed couples (a Norwegian with a partner who moved here).
PARTNER_COUNTRIES = (("SE", 5), ("TH", 4), ("PH", 4), ("PL", 3), ("DE", 3), ("DK", 3),
                     ("GB", 3), ("US", 2), ("LT", 1))

# --- Municipalities (2024 numbers), weighted by population, with postal places --------
# (number, name, population in thousands, streets end in "-vegen" here, postal places)

MUNICIPALITIES: tuple[tuple[str, str, int, bool, tuple[tuple[str, str], ...]], ...] = (
    ("0301", "Oslo", 717, False, (
        ("0150", "OSLO"), ("0154", "OSLO"), ("0158", "OSLO"), ("0164", "OSLO"),
        ("0171", "OSLO"), ("0176", "OSLO"), ("0182", "OSLO"), ("0187", "OSLO"),
        ("0190", "OSLO"), ("0252", "OSLO"), ("0255", "OSLO"), ("0262", "OSLO"),
        ("0268", "OSLO"), ("0275", "OSLO"), ("0281", "OSLO"), ("0350", "OSLO"),
        ("0357", "OSLO"), ("0364", "OSLO"), ("0371", "OSLO"), ("0452", "OSLO"),
        ("0458", "OSLO"), ("0464", "OSLO"), ("0473", "OSLO"), ("0480", "OSLO"),
        ("0552", "OSLO"), ("0556", "OSLO"), ("0562", "OSLO"), ("0571", "OSLO"),
        ("0580", "OSLO"), ("0590", "OSLO"), ("0655", "OSLO"), ("0661", "OSLO"),
        ("0671", "OSLO"), ("0680", "OSLO"), ("0687", "OSLO"), ("0752", "OSLO"),
        ("0763", "OSLO"), ("0771", "OSLO"), ("0784", "OSLO"), ("0851", "OSLO"),
        ("0860", "OSLO"), ("0874", "OSLO"), ("0956", "OSLO"), ("0968", "OSLO"),
        ("0975", "OSLO"), ("0982", "OSLO"), ("1053", "OSLO"), ("1064", "OSLO"),
        ("1081", "OSLO"), ("1152", "OSLO"), ("1164", "OSLO"), ("1177", "OSLO"),
        ("1254", "OSLO"), ("1266", "OSLO"), ("1283", "OSLO"),
    )),
    ("4601", "Bergen", 291, True, (
        ("5003", "BERGEN"), ("5008", "BERGEN"), ("5011", "BERGEN"), ("5015", "BERGEN"),
        ("5033", "BERGEN"), ("5037", "BERGEN"), ("5052", "BERGEN"), ("5058", "BERGEN"),
        ("5063", "BERGEN"), ("5072", "BERGEN"), ("5089", "BERGEN"), ("5094", "BERGEN"),
        ("5104", "EIDSVÅG I ÅSANE"), ("5111", "BREISTEIN"), ("5116", "ULSET"),
        ("5132", "NYBORG"), ("5143", "FYLLINGSDALEN"), ("5147", "FYLLINGSDALEN"),
        ("5162", "LAKSEVÅG"), ("5172", "LODDEFJORD"), ("5179", "GODVIK"),
        ("5221", "NESTTUN"), ("5224", "NESTTUN"), ("5232", "PARADIS"), ("5236", "RÅDAL"),
        ("5243", "FANA"), ("5251", "SØREIDGREND"), ("5254", "SANDSLI"),
        ("5261", "INDRE ARNA"), ("5265", "YTRE ARNA"),
    )),
    ("5001", "Trondheim", 214, True, (
        ("7010", "TRONDHEIM"), ("7012", "TRONDHEIM"), ("7014", "TRONDHEIM"),
        ("7016", "TRONDHEIM"), ("7018", "TRONDHEIM"), ("7020", "TRONDHEIM"),
        ("7024", "TRONDHEIM"), ("7030", "TRONDHEIM"), ("7033", "TRONDHEIM"),
        ("7036", "TRONDHEIM"), ("7040", "TRONDHEIM"), ("7043", "TRONDHEIM"),
        ("7045", "TRONDHEIM"), ("7050", "TRONDHEIM"), ("7053", "RANHEIM"),
        ("7054", "RANHEIM"), ("7058", "JAKOBSLI"), ("7067", "TRONDHEIM"),
        ("7072", "HEIMDAL"), ("7075", "TILLER"), ("7078", "SAUPSTAD"), ("7080", "HEIMDAL"),
        ("7082", "KATTEM"), ("7089", "HEIMDAL"), ("7091", "TILLER"), ("7099", "FLATÅSEN"),
    )),
    ("1103", "Stavanger", 146, False, (
        ("4005", "STAVANGER"), ("4006", "STAVANGER"), ("4009", "STAVANGER"),
        ("4010", "STAVANGER"), ("4012", "STAVANGER"), ("4014", "STAVANGER"),
        ("4016", "STAVANGER"), ("4019", "STAVANGER"), ("4020", "STAVANGER"),
        ("4021", "STAVANGER"), ("4023", "STAVANGER"), ("4024", "STAVANGER"),
        ("4027", "STAVANGER"), ("4031", "STAVANGER"), ("4085", "HUNDVÅG"),
    )),
    ("3201", "Bærum", 130, False, (
        ("1337", "SANDVIKA"), ("1338", "SANDVIKA"), ("1344", "HASLUM"), ("1346", "GJETTUM"),
        ("1350", "LOMMEDALEN"), ("1356", "BEKKESTUA"), ("1358", "JAR"), ("1360", "FORNEBU"),
        ("1363", "HØVIK"), ("1366", "LYSAKER"), ("1369", "STABEKK"),
    )),
    ("4204", "Kristiansand", 117, False, (
        ("4608", "KRISTIANSAND S"), ("4610", "KRISTIANSAND S"), ("4612", "KRISTIANSAND S"),
        ("4614", "KRISTIANSAND S"), ("4616", "KRISTIANSAND S"), ("4618", "KRISTIANSAND S"),
        ("4621", "KRISTIANSAND S"), ("4626", "KRISTIANSAND S"), ("4630", "KRISTIANSAND S"),
        ("4632", "KRISTIANSAND S"), ("4639", "KRISTIANSAND S"),
    )),
    ("3301", "Drammen", 104, False, (
        ("3015", "DRAMMEN"), ("3017", "DRAMMEN"), ("3019", "DRAMMEN"), ("3021", "DRAMMEN"),
        ("3024", "DRAMMEN"), ("3027", "DRAMMEN"), ("3029", "DRAMMEN"), ("3036", "DRAMMEN"),
        ("3039", "DRAMMEN"), ("3043", "DRAMMEN"), ("3047", "DRAMMEN"),
        ("3050", "MJØNDALEN"), ("3055", "KROKSTADELVA"),
    )),
    ("3203", "Asker", 98, False, (
        ("1383", "ASKER"), ("1384", "ASKER"), ("1385", "ASKER"), ("1386", "ASKER"),
        ("1394", "NESBRU"), ("1395", "HVALSTAD"), ("1396", "BILLINGSTAD"),
        ("3440", "RØYKEN"), ("3470", "SLEMMESTAD"),
    )),
    ("3205", "Lillestrøm", 92, False, (
        ("2000", "LILLESTRØM"), ("2004", "LILLESTRØM"), ("2007", "KJELLER"),
        ("2008", "FJERDINGBY"), ("2010", "STRØMMEN"), ("2013", "SKJETTEN"),
        ("2019", "SKEDSMOKORSET"), ("2020", "SKEDSMOKORSET"),
    )),
    ("3107", "Fredrikstad", 84, False, (
        ("1604", "FREDRIKSTAD"), ("1606", "FREDRIKSTAD"), ("1608", "FREDRIKSTAD"),
        ("1610", "FREDRIKSTAD"), ("1613", "FREDRIKSTAD"), ("1615", "FREDRIKSTAD"),
        ("1618", "FREDRIKSTAD"), ("1621", "GRESSVIK"),
    )),
    ("1108", "Sandnes", 83, False, (
        ("4306", "SANDNES"), ("4307", "SANDNES"), ("4308", "SANDNES"),
        ("4310", "HOMMERSÅK"), ("4312", "SANDNES"), ("4314", "SANDNES"),
        ("4316", "SANDNES"), ("4318", "SANDNES"), ("4322", "SANDNES"), ("4326", "SANDNES"),
    )),
    ("5501", "Tromsø", 79, False, (
        ("9006", "TROMSØ"), ("9007", "TROMSØ"), ("9008", "TROMSØ"), ("9009", "TROMSØ"),
        ("9010", "TROMSØ"), ("9011", "TROMSØ"), ("9012", "TROMSØ"), ("9013", "TROMSØ"),
        ("9014", "TROMSØ"), ("9015", "TROMSØ"), ("9016", "TROMSØ"), ("9017", "TROMSØ"),
        ("9019", "TROMSØ"), ("9020", "TROMSDALEN"), ("9024", "TOMASJORD"),
    )),
    ("3907", "Sandefjord", 65, False, (
        ("3202", "SANDEFJORD"), ("3204", "SANDEFJORD"), ("3206", "SANDEFJORD"),
        ("3208", "SANDEFJORD"), ("3210", "SANDEFJORD"), ("3212", "SANDEFJORD"),
        ("3214", "SANDEFJORD"), ("3216", "SANDEFJORD"), ("3240", "ANDEBU"),
    )),
    ("3207", "Nordre Follo", 63, False, (
        ("1400", "SKI"), ("1405", "LANGHUS"), ("1406", "SKI"), ("1408", "KRÅKSTAD"),
        ("1410", "KOLBOTN"), ("1412", "SOFIEMYR"), ("1413", "TÅRNÅSEN"),
        ("1415", "OPPEGÅRD"), ("1420", "SVARTSKOG"),
    )),
    ("3105", "Sarpsborg", 59, False, (
        ("1706", "SARPSBORG"), ("1708", "SARPSBORG"), ("1710", "SARPSBORG"),
        ("1712", "GRÅLUM"), ("1714", "GRÅLUM"), ("1715", "YVEN"), ("1718", "GREÅKER"),
    )),
    ("1508", "Ålesund", 58, True, (
        ("6002", "ÅLESUND"), ("6003", "ÅLESUND"), ("6004", "ÅLESUND"), ("6005", "ÅLESUND"),
        ("6008", "ÅLESUND"), ("6010", "ÅLESUND"), ("6013", "ÅLESUND"), ("6015", "ÅLESUND"),
        ("6017", "ÅLESUND"), ("6020", "ÅLESUND"), ("6030", "LANGEVÅG"),
    )),
    ("3905", "Tønsberg", 58, False, (
        ("3110", "TØNSBERG"), ("3112", "TØNSBERG"), ("3114", "TØNSBERG"),
        ("3116", "TØNSBERG"), ("3118", "TØNSBERG"), ("3122", "TØNSBERG"),
        ("3124", "TØNSBERG"), ("3174", "REVETAL"),
    )),
    ("4003", "Skien", 56, False, (
        ("3705", "SKIEN"), ("3710", "SKIEN"), ("3712", "SKIEN"), ("3714", "SKIEN"),
        ("3716", "SKIEN"), ("3718", "SKIEN"), ("3722", "SKIEN"), ("3727", "SKIEN"),
        ("3730", "SKIEN"), ("3735", "SKIEN"),
    )),
    ("1804", "Bodø", 53, False, (
        ("8003", "BODØ"), ("8005", "BODØ"), ("8006", "BODØ"), ("8008", "BODØ"),
        ("8009", "BODØ"), ("8010", "BODØ"), ("8011", "BODØ"), ("8012", "BODØ"),
        ("8013", "BODØ"), ("8015", "BODØ"), ("8016", "BODØ"), ("8020", "BODØ"),
    )),
    ("3103", "Moss", 51, False, (
        ("1511", "MOSS"), ("1514", "MOSS"), ("1516", "MOSS"), ("1518", "MOSS"),
        ("1523", "MOSS"), ("1526", "MOSS"), ("1530", "MOSS"), ("1580", "RYGGE"),
    )),
    ("3222", "Lørenskog", 48, False, (
        ("1470", "LØRENSKOG"), ("1472", "FJELLHAMAR"), ("1473", "LØRENSKOG"),
        ("1474", "LØRENSKOG"), ("1475", "FINSTADJORDET"), ("1476", "RASTA"),
    )),
    ("3909", "Larvik", 48, False, (
        ("3256", "LARVIK"), ("3258", "LARVIK"), ("3260", "LARVIK"), ("3264", "LARVIK"),
        ("3267", "LARVIK"), ("3270", "LARVIK"), ("3290", "STAVERN"),
    )),
    ("4203", "Arendal", 46, False, (
        ("4808", "ARENDAL"), ("4814", "ARENDAL"), ("4816", "KOLBJØRNSVIK"),
        ("4817", "HIS"), ("4821", "RYKENE"), ("4836", "ARENDAL"), ("4838", "ARENDAL"),
    )),
    ("3209", "Ullensaker", 42, False, (
        ("2050", "JESSHEIM"), ("2052", "JESSHEIM"), ("2054", "MOGREINA"),
        ("2055", "NORDKISA"), ("2056", "ALGARHEIM"), ("2058", "SESSVOLLMOEN"),
        ("2060", "GARDERMOEN"), ("2069", "JESSHEIM"),
    )),
    ("4626", "Øygarden", 39, True, (
        ("5353", "STRAUME"), ("5354", "STRAUME"), ("5355", "KNARREVIK"),
        ("5357", "FJELL"), ("5363", "ÅGOTNES"),
    )),
    ("1106", "Haugesund", 38, False, (
        ("5514", "HAUGESUND"), ("5516", "HAUGESUND"), ("5518", "HAUGESUND"),
        ("5521", "HAUGESUND"), ("5523", "HAUGESUND"), ("5525", "HAUGESUND"),
        ("5527", "HAUGESUND"), ("5531", "HAUGESUND"), ("5536", "HAUGESUND"),
    )),
    ("4001", "Porsgrunn", 37, False, (
        ("3911", "PORSGRUNN"), ("3913", "PORSGRUNN"), ("3915", "PORSGRUNN"),
        ("3917", "PORSGRUNN"), ("3920", "PORSGRUNN"), ("3940", "PORSGRUNN"),
        ("3944", "PORSGRUNN"), ("3965", "HERRE"),
    )),
    ("3403", "Hamar", 33, True, (
        ("2315", "HAMAR"), ("2316", "HAMAR"), ("2317", "HAMAR"), ("2318", "HAMAR"),
        ("2319", "HAMAR"), ("2320", "FURNES"), ("2322", "RIDABU"),
    )),
    ("1506", "Molde", 32, True, (
        ("6402", "MOLDE"), ("6404", "MOLDE"), ("6407", "MOLDE"), ("6409", "MOLDE"),
        ("6411", "MOLDE"), ("6413", "MOLDE"), ("6415", "MOLDE"), ("6421", "MOLDE"),
    )),
    ("3101", "Halden", 31, False, (
        ("1771", "HALDEN"), ("1776", "HALDEN"), ("1778", "HALDEN"), ("1782", "HALDEN"),
        ("1784", "HALDEN"), ("1788", "HALDEN"), ("1792", "TISTEDAL"),
    )),
    ("3305", "Ringerike", 31, False, (
        ("3510", "HØNEFOSS"), ("3511", "HØNEFOSS"), ("3513", "HØNEFOSS"),
        ("3515", "HØNEFOSS"), ("3517", "HØNEFOSS"), ("3519", "HØNEFOSS"),
        ("3530", "RØYSE"),
    )),
    ("3407", "Gjøvik", 31, True, (
        ("2815", "GJØVIK"), ("2816", "GJØVIK"), ("2817", "GJØVIK"), ("2818", "GJØVIK"),
        ("2819", "GJØVIK"), ("2821", "GJØVIK"), ("2825", "GJØVIK"),
    )),
    ("4627", "Askøy", 30, True, (
        ("5300", "KLEPPESTØ"), ("5302", "STRUSSHAMN"), ("5303", "FOLLESE"),
        ("5304", "HETLEVIK"), ("5306", "ERDAL"), ("5307", "ASK"),
    )),
    ("4631", "Alver", 30, True, (
        ("5911", "ALVERSUND"), ("5914", "ISDALSTØ"), ("5915", "HJELMÅS"),
        ("5918", "FREKHAUG"), ("5936", "MANGER"), ("5943", "AUSTRHEIM"),
    )),
    ("3405", "Lillehammer", 29, True, (
        ("2609", "LILLEHAMMER"), ("2611", "LILLEHAMMER"), ("2613", "LILLEHAMMER"),
        ("2615", "LILLEHAMMER"), ("2618", "LILLEHAMMER"), ("2619", "LILLEHAMMER"),
        ("2624", "LILLEHAMMER"),
    )),
    ("1124", "Sola", 28, False, (
        ("4050", "SOLA"), ("4052", "RØYNEBERG"), ("4053", "RÆGE"), ("4054", "TJELTA"),
        ("4056", "TANANGER"),
    )),
    ("3303", "Kongsberg", 28, False, (
        ("3611", "KONGSBERG"), ("3612", "KONGSBERG"), ("3613", "KONGSBERG"),
        ("3614", "KONGSBERG"), ("3616", "KONGSBERG"), ("3618", "KONGSBERG"),
    )),
    ("3901", "Horten", 28, False, (
        ("3181", "HORTEN"), ("3182", "HORTEN"), ("3183", "HORTEN"), ("3184", "BORRE"),
        ("3186", "HORTEN"), ("3187", "HORTEN"),
    )),
    ("1833", "Rana", 26, False, (
        ("8608", "MO I RANA"), ("8610", "MO I RANA"), ("8613", "MO I RANA"),
        ("8614", "MO I RANA"), ("8616", "MO I RANA"), ("8618", "MO I RANA"),
        ("8622", "MO I RANA"),
    )),
    ("5503", "Harstad", 25, False, (
        ("9405", "HARSTAD"), ("9406", "HARSTAD"), ("9407", "HARSTAD"),
        ("9408", "HARSTAD"), ("9409", "HARSTAD"), ("9411", "HARSTAD"),
        ("9414", "HARSTAD"),
    )),
    ("5035", "Stjørdal", 25, True, (
        ("7500", "STJØRDAL"), ("7502", "STJØRDAL"), ("7503", "STJØRDAL"),
        ("7504", "STJØRDAL"), ("7506", "STJØRDAL"), ("7510", "SKATVAL"),
    )),
    ("1505", "Kristiansund", 24, True, (
        ("6508", "KRISTIANSUND N"), ("6509", "KRISTIANSUND N"),
        ("6511", "KRISTIANSUND N"), ("6514", "KRISTIANSUND N"),
        ("6517", "KRISTIANSUND N"), ("6520", "FREI"),
    )),
    ("4202", "Grimstad", 24, False, (
        ("4876", "GRIMSTAD"), ("4877", "GRIMSTAD"), ("4878", "GRIMSTAD"),
        ("4879", "GRIMSTAD"), ("4885", "GRIMSTAD"), ("4886", "GRIMSTAD"),
    )),
    ("5006", "Steinkjer", 24, True, (
        ("7702", "STEINKJER"), ("7704", "STEINKJER"), ("7707", "STEINKJER"),
        ("7709", "STEINKJER"), ("7712", "STEINKJER"), ("7715", "STEINKJER"),
    )),
    ("4647", "Sunnfjord", 22, True, (
        ("6800", "FØRDE"), ("6803", "FØRDE"), ("6806", "NAUSTDAL"), ("6807", "FØRDE"),
        ("6810", "FØRDE"), ("6813", "FØRDE"), ("6843", "SKEI I JØLSTER"),
    )),
    ("5601", "Alta", 21, False, (
        ("9506", "ALTA"), ("9507", "ALTA"), ("9508", "ALTA"), ("9509", "ALTA"),
        ("9510", "ALTA"), ("9511", "ALTA"), ("9513", "ALTA"), ("9515", "ALTA"),
    )),
    ("1806", "Narvik", 21, False, (
        ("8505", "NARVIK"), ("8506", "NARVIK"), ("8507", "NARVIK"), ("8508", "NARVIK"),
        ("8509", "NARVIK"), ("8514", "NARVIK"), ("8516", "NARVIK"),
    )),
    ("3401", "Kongsvinger", 18, True, (
        ("2211", "KONGSVINGER"), ("2212", "KONGSVINGER"), ("2213", "KONGSVINGER"),
        ("2214", "KONGSVINGER"), ("2216", "ROVERUD"), ("2219", "BRANDVAL"),
    )),
    ("5007", "Namsos", 15, True, (
        ("7800", "NAMSOS"), ("7803", "NAMSOS"), ("7804", "NAMSOS"), ("7805", "NAMSOS"),
        ("7817", "SALSNES"),
    )),
)

# --- Streets: a stem and an ending ("Bjørke" + "veien"), or a classic town street ------

STREET_STEMS = (
    "Bjørke", "Gran", "Furu", "Eike", "Linde", "Rogne", "Hegge", "Selje", "Løvås", "Sol",
    "Fjell", "Bakke", "Skog", "Ås", "Myr", "Berg", "Dal", "Strand", "Sjø", "Kirke", "Skole",
    "Stasjons", "Preste", "Mølle", "Smie", "Sag", "Brygge", "Nord", "Sør", "Øst", "Vest",
    "Lyng", "Bringebær", "Blåbær", "Tyttebær", "Kløver", "Hvitveis", "Blåklokke",
    "Prestekrage", "Rose", "Syrin", "Konvall", "Elve", "Fosse", "Bekke", "Tjern", "Vann",
    "Eng", "Åker", "Gårds", "Tun", "Stabbur", "Låve", "Kvern", "Bru", "Havne", "Fyr",
    "Kai", "Naust", "Måke", "Ørne", "Hauk", "Rype", "Elg", "Rev", "Grevling", "Ekorn",
    "Lerke", "Trost", "Meise", "Svale", "Ugle", "Kongs", "Dronning", "Prinse", "Slotts",
    "Park", "Hage", "Ring", "Rund", "Tvær", "Lang", "Bred", "Høy", "Lia", "Solbakke",
    "Solhaug", "Granli", "Furuli", "Bjørkeli", "Haug", "Hovde", "Holme", "Nes", "Vik",
    "Øvre", "Nedre", "Midt", "Vinter", "Sommer", "Vår", "Høst",
)
STREET_ENDINGS = ("veien", "veien", "veien", "gata", "gata", "bakken", "lia", "stien", "svingen",
                  "tunet", "haugen", "åsen", "jordet", "kroken")
STREET_ENDINGS_NYNORSK = ("vegen", "vegen", "vegen", "gata", "bakken", "lia", "stien",
                          "svingen", "tunet", "haugen", "åsen", "teigen", "kroken")
CLASSIC_STREETS = (
    "Storgata", "Kirkegata", "Skolegata", "Torggata", "Nygata", "Havnegata", "Sjøgata",
    "Strandgata", "Kongens gate", "Dronningens gate", "Prinsens gate", "Jernbanegata",
    "Parkveien", "Industriveien", "Ringveien", "Stasjonsveien", "Markveien", "Elvegata",
    "Brugata", "Rådhusgata", "Tollbodgata", "Fjordveien", "Sentrumsveien", "Nordre gate",
    "Søndre gate", "Øvre Slottsgate", "Olav Kyrres gate", "Haakon VIIs gate",
    "Dronning Mauds gate", "Henrik Ibsens gate", "Bjørnstjerne Bjørnsons gate",
    "Ivar Aasens veg", "Aasmund Olavsson Vinjes veg",
)
BUSINESS_STREETS = (
    "Industriveien", "Næringsveien", "Verkstedveien", "Terminalveien", "Lagerveien",
    "Storgata", "Sentrumsveien", "Havnegata", "Teknologiveien", "Innovasjonsparken",
    "Kontorveien", "Handelsveien",
)

# --- Businesses ----------------------------------------------------------------------
# (name word, NACE code of the industry); ENK and AS draw from the same list.

TRADES = (
    ("Bygg", "41.200"), ("Tømrer", "43.320"), ("Snekkerservice", "43.320"),
    ("Rørleggerservice", "43.221"), ("Elektro", "43.210"), ("Maling", "43.341"),
    ("Data", "62.010"), ("IT", "62.020"), ("Software", "62.010"), ("Regnskap", "69.201"),
    ("Advokatfirma", "69.100"), ("Frisør", "96.021"), ("Transport", "49.410"),
    ("Taxi", "49.320"), ("Eiendom", "68.209"), ("Eiendomsutvikling", "68.100"),
    ("Restaurant", "56.101"), ("Kafé", "56.101"), ("Catering", "56.210"),
    ("Renhold", "81.210"), ("Hage og Anlegg", "81.300"), ("Consulting", "70.220"),
    ("Rådgivning", "70.220"), ("Design", "74.102"), ("Foto", "74.201"),
    ("Arkitekter", "71.111"), ("Ingeniørtjenester", "71.129"), ("Fiskeri", "03.111"),
    ("Havbruk", "03.211"), ("Gårdsdrift", "01.410"), ("Skogsdrift", "02.100"),
    ("Bakeri", "10.711"), ("Bilverksted", "45.201"), ("Bilsalg", "45.111"),
    ("Fysioterapi", "86.902"), ("Tannlegesenter", "86.230"), ("Legesenter", "86.211"),
    ("Holding", "64.200"), ("Invest", "64.200"), ("Blomster", "47.761"),
    ("Sport", "47.640"), ("Media", "58.130"), ("Musikk", "90.011"), ("Event", "82.300"),
    ("Oversettelse", "74.300"), ("Treningssenter", "93.130"), ("Barnehage", "88.911"),
    ("Entreprenør", "43.120"), ("Graving", "43.120"), ("Tak", "43.910"),
    ("Markedsføring", "73.110"), ("Kommunikasjon", "70.210"), ("Sikkerhet", "80.100"),
    ("Kjøleteknikk", "43.222"), ("Ventilasjon", "43.222"), ("Mur og Puss", "43.990"),
)
# Short invented name parts: "Fjord Data AS", "Nordkraft AS".
PLACE_WORDS = (
    "Fjord", "Nord", "Vest", "Sør", "Øst", "Fjell", "Nordlys", "Polar", "Vik", "Havbris",
    "Kyst", "Midnattsol", "Bjørk", "Furu", "Elg", "Rein", "Ørn", "Ulv", "Linn", "Bølge",
    "Skagerrak", "Nordsjø", "Viking", "Norrøn", "Trollheim", "Lyng", "Alpin", "Aurora",
    "Arktis", "Ask", "Tind", "Breen", "Fossen", "Stjerne", "Sol", "Måne", "Ting", "Saga",
)
FUSED_ENDINGS = ("tek", "data", "kraft", "bygg", "form", "nett", "lab", "vekst", "plan",
                 "system", "service", "partner")
SA_NAMES = (("Samvirkelag", "47.111"), ("Meierisamvirke", "10.510"),
            ("Fiskesalgslag", "46.381"), ("Boligbyggelag", "68.320"), ("Kornsilo", "52.100"))
FLI_NAMES = (("Idrettslag", "93.120"), ("Skolekorps", "94.991"), ("Sjakklubb", "94.991"),
             ("Husflidslag", "94.991"), ("Historielag", "94.991"),
             ("Sanitetsforening", "94.991"), ("Velforening", "94.991"),
             ("Turlag", "93.190"), ("Skiklubb", "93.120"), ("Mannskor", "94.991"))
STI_NAMES = (("Kultursenter", "90.040"), ("Minnefond", "94.991"), ("Museum", "91.020"),
             ("Legat", "94.991"))
ASA_NAMES = (("Energi", "35.140"), ("Shipping", "50.201"), ("Sjømat", "03.211"),
             ("Teknologi", "62.010"), ("Eiendom", "68.209"), ("Industri", "25.110"))

# --- Agencies: real public bodies, synthetic organisation numbers ----------------------
# (slug, form, level, name_nb, name_nn, name_en, municipality number, NACE,
#  street, postal code, postal town, registered on)

AGENCIES: tuple[tuple[str, str, str, str, str, str, str | None, str, str, str, str, str], ...] = (
    ("skatteetaten", "STAT", "central", "Skatteetaten", "Skatteetaten",
     "Norwegian Tax Administration", None, "84.110", "Fredrik Selmers vei 4", "0663", "OSLO",
     "1995-03-01"),
    ("nav", "STAT", "central", "Arbeids- og velferdsetaten (Nav)",
     "Arbeids- og velferdsetaten (Nav)", "Norwegian Labour and Welfare Administration", None,
     "84.300", "Fyrstikkalléen 1", "0661", "OSLO", "2006-07-01"),
    ("digdir", "STAT", "central", "Digitaliseringsdirektoratet", "Digitaliseringsdirektoratet",
     "Norwegian Digitalisation Agency", None, "84.110", "Grev Wedels plass 9", "0151", "OSLO",
     "2020-01-01"),
    ("brreg", "STAT", "central", "Brønnøysundregistrene", "Brønnøysundregistera",
     "The Brønnøysund Register Centre", None, "84.110", "Havnegata 48", "8900",
     "BRØNNØYSUND", "1995-03-01"),
    ("lanekassen", "STAT", "central", "Statens lånekasse for utdanning",
     "Statens lånekasse for utdanning", "Norwegian State Educational Loan Fund", None,
     "84.120", "Postboks 6600 Etterstad", "0607", "OSLO", "1995-03-01"),
    ("udi", "STAT", "central", "Utlendingsdirektoratet", "Utlendingsdirektoratet",
     "Norwegian Directorate of Immigration", None, "84.110", "Postboks 2098 Vika", "0125",
     "OSLO", "1995-03-01"),
    ("statens-vegvesen", "STAT", "central", "Statens vegvesen", "Statens vegvesen",
     "Norwegian Public Roads Administration", None, "84.130", "Postboks 1010 Nordre Ål",
     "2605", "LILLEHAMMER", "1995-03-01"),
    ("oslo-kommune", "KOMM", "municipal", "Oslo kommune", "Oslo kommune", "City of Oslo",
     "0301", "84.110", "Rådhusplassen 1", "0037", "OSLO", "1995-02-20"),
    ("bergen-kommune", "KOMM", "municipal", "Bergen kommune", "Bergen kommune",
     "City of Bergen", "4601", "84.110", "Rådhusgaten 10", "5014", "BERGEN", "1995-02-20"),
    ("trondheim-kommune", "KOMM", "municipal", "Trondheim kommune", "Trondheim kommune",
     "City of Trondheim", "5001", "84.110", "Munkegata 1", "7013", "TRONDHEIM",
     "1995-02-20"),
)
# Agencies in a municipality we do not list above still need its number on the row.
AGENCY_MUNICIPALITY = {"OSLO": "0301", "BERGEN": "4601", "TRONDHEIM": "5001",
                       "BRØNNØYSUND": "1813", "LILLEHAMMER": "3405"}

EMAIL_DOMAINS = (("example.com", 55), ("example.org", 25),
                 ("example.net", 20))
# fmt: on
