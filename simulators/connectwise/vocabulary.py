"""Word lists the dataset generator draws realistic-looking values from."""

from __future__ import annotations

COMPANY_PLACES = (
    "Blue Ridge", "Harbor", "Summit", "Lakeside", "Pinecrest", "Riverbend", "Oakwood", "Granite",
    "Cedar Valley", "Northstar", "Silver Creek", "Maple", "Redwood", "Bayview", "Ironwood",
    "Highland", "Prairie", "Coastal", "Westfield", "Eastgate", "Stonebridge", "Willow",
    "Sunrise", "Evergreen", "Falcon", "Meridian", "Keystone", "Horizon", "Liberty", "Pioneer",
    "Crescent", "Sterling", "Aspen", "Magnolia", "Copper", "Bluewater", "Golden Gate", "Heritage",
    "Canyon", "Clearwater", "Foxhill", "Brookside", "Timberline", "Seaside", "Parkview",
    "Union", "Capital", "Metro", "Lighthouse", "Orchard", "Juniper", "Sequoia", "Tidewater",
    "Crossroads", "Beacon", "Ridgeway", "Fairview", "Hillcrest", "Kingsley", "Windmill",
)  # fmt: skip

COMPANY_TRADES = (
    "Dental", "Logistics", "Law", "Accounting", "Construction", "Veterinary", "Realty",
    "Manufacturing", "Engineering", "Medical", "Insurance", "Architecture", "Pharmacy",
    "Plumbing", "Electric", "Landscaping", "Marketing", "Consulting", "Foods", "Brewing",
    "Auto Repair", "Printing", "Financial", "Wealth", "Pediatrics", "Orthopedics", "Imaging",
    "Staffing", "Freight", "Roofing", "Hospitality", "Fitness", "Optometry", "Chiropractic",
    "Credit Union", "Title", "Surveying", "Packaging", "Machining", "Distribution",
)  # fmt: skip

COMPANY_SUFFIXES = (
    "LLC", "Inc", "Group", "Partners", "Associates", "Co", "Ltd", "Services", "Holdings",
    "Solutions", "& Sons", "PLLC",
)  # fmt: skip

# (city, state identifier, zip prefix, area code, country id); state ids in reference.STATES
CITIES = (
    ("Tampa", "FL", "336", "813", 1),
    ("Orlando", "FL", "328", "407", 1),
    ("Miami", "FL", "331", "305", 1),
    ("Atlanta", "GA", "303", "404", 1),
    ("Savannah", "GA", "314", "912", 1),
    ("Austin", "TX", "787", "512", 1),
    ("Dallas", "TX", "752", "214", 1),
    ("Houston", "TX", "770", "713", 1),
    ("San Diego", "CA", "921", "619", 1),
    ("Sacramento", "CA", "958", "916", 1),
    ("Buffalo", "NY", "142", "716", 1),
    ("Albany", "NY", "122", "518", 1),
    ("Chicago", "IL", "606", "312", 1),
    ("Naperville", "IL", "605", "630", 1),
    ("Seattle", "WA", "981", "206", 1),
    ("Spokane", "WA", "992", "509", 1),
    ("Denver", "CO", "802", "303", 1),
    ("Boulder", "CO", "803", "720", 1),
    ("Raleigh", "NC", "276", "919", 1),
    ("Charlotte", "NC", "282", "704", 1),
    ("Boston", "MA", "021", "617", 1),
    ("Worcester", "MA", "016", "508", 1),
    ("Toronto", "ON", "M5V", "416", 2),
    ("Vancouver", "BC", "V6B", "604", 2),
)

STREETS = (
    "Main", "Oak", "Pine", "Maple", "Cedar", "Elm", "Washington", "Lake", "Hill", "Park",
    "Market", "Church", "Commerce", "Industrial", "Harbor", "Ridge", "Sunset", "Highland",
    "Franklin", "Jefferson", "Madison", "Lincoln", "Jackson", "River", "Spring", "Center",
)  # fmt: skip

STREET_SUFFIXES = ("St", "Ave", "Blvd", "Rd", "Dr", "Pkwy", "Way", "Ln", "Ct")

SITE_NAMES = (
    "Warehouse", "Branch Office", "North Office", "South Office", "Annex", "Data Center",
    "Retail Store", "Clinic", "Plant", "Training Center", "Distribution Center", "Lab",
)  # fmt: skip

FIRST_NAMES = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
    "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Carlos", "Karen", "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Betty", "Mark", "Sandra",
    "Priya", "Ashley", "Steven", "Kimberly", "Paul", "Emily", "Andrew", "Donna", "Joshua",
    "Michelle", "Kenneth", "Carol", "Kevin", "Amanda", "Brian", "Wei", "George", "Melissa",
    "Timothy", "Deborah", "Ronald", "Stephanie", "Jason", "Rebecca", "Edward", "Sharon", "Fatima",
    "Laura", "Ryan", "Cynthia", "Jacob", "Aisha", "Gary", "Amy", "Nicholas", "Kathleen", "Eric",
    "Angela", "Jonathan", "Shirley", "Hiroshi", "Emma", "Diego", "Olivia", "Noah", "Sofia",
)  # fmt: skip

LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Patel", "Kim", "Chen", "O'Brien",
    "Murphy", "Cook", "Rogers", "Morgan", "Peterson", "Cooper", "Reed", "Bailey", "Bell",
)  # fmt: skip

TITLES = (
    "Owner", "President", "Office Manager", "Practice Manager", "Controller", "CFO", "CEO",
    "IT Coordinator", "Operations Manager", "Receptionist", "Bookkeeper", "Director",
    "Administrator", "Paralegal", "Hygienist", "Engineer", "Sales Manager", "Accountant",
)  # fmt: skip

# Configuration type id -> (name code, ((manufacturer id, model numbers, operating systems), ...))
_WINDOWS_SERVER = ("Windows Server 2022", "Windows Server 2019")
_WINDOWS = ("Windows 11 Pro", "Windows 10 Pro")
HARDWARE = {
    1: ("SRV", ((1, ("PowerEdge R650", "PowerEdge T550"), (*_WINDOWS_SERVER, "Ubuntu 22.04 LTS")),
                (2, ("ProLiant DL380 Gen10", "ProLiant ML350 Gen10"), _WINDOWS_SERVER))),
    2: ("WS", ((1, ("OptiPlex 7010", "Latitude 5440"), _WINDOWS),
               (3, ("ThinkPad T14", "ThinkCentre M70q"), _WINDOWS),
               (10, ("MacBook Pro 14", "iMac 24"), ("macOS 14 Sonoma", "macOS 13 Ventura")))),
    3: ("NET", ((4, ("Catalyst 9200", "Catalyst 1000"), ("Cisco IOS XE",)),
                (5, ("UniFi Switch 24", "UniFi U6-Pro"), ("UniFi OS",)),
                (12, ("MS120-24P", "MR46"), ("Meraki MS 16",)))),
    4: ("FW", ((6, ("FortiGate 60F", "FortiGate 100F"), ("FortiOS 7.2", "FortiOS 7.4")),
               (7, ("TZ470", "NSa 2700"), ("SonicOS 7",)))),
    5: ("PRN", ((2, ("LaserJet Pro M404", "OfficeJet Pro 9015"), ()),
                (9, ("HL-L8360CDW", "MFC-L8900CDW"), ()))),
    6: ("LIC", ((8, ("M365 Business Premium", "Windows Server CAL"), ()),)),
}  # fmt: skip

CONFIGURATION_NOTES = (
    "Replaced fan under warranty.",
    "Backed up nightly to NAS.",
    "Scheduled for refresh next fiscal year.",
    "Monitored by RMM agent.",
    "Located in the server closet.",
)
