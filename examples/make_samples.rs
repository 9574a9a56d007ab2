//! Writes `samples/<profile>.csv` and `samples/<profile>.xlsx` from one table per profile.
//!
//! Run with `cargo run --example make_samples`. The files are committed; this generator
//! exists so they can be rebuilt reproducibly and so CSV and xlsx never drift apart: both
//! come from the same rows, and the deliberately wrong rows listed in `samples/README.md`
//! sit on the same spreadsheet row in both (header on row 1, data from row 2).
//!
//! A cell written as `#123` becomes a real *numeric* cell in the xlsx (an id typed into a
//! number-formatted column, which `check` warns about) and plain `123` in the CSV, where
//! the difference cannot be expressed.

use std::path::{Path, PathBuf};

use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, Workbook};

/// One sample: file stem, header texts (as an HR sheet would spell them) and data rows.
struct Sample {
    stem: &'static str,
    sheet: &'static str,
    headers: &'static [&'static str],
    rows: Vec<Vec<String>>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples");
    std::fs::create_dir_all(&dir)?;
    for s in [odin(), superoffice(), users_api(), scim()] {
        write_csv(&s, &dir.join(format!("{}.csv", s.stem)))?;
        write_xlsx(&s, &dir.join(format!("{}.xlsx", s.stem)))?;
        println!(
            "wrote samples/{0}.csv and samples/{0}.xlsx ({1} rows)",
            s.stem,
            s.rows.len()
        );
    }
    Ok(())
}

fn write_csv(s: &Sample, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let mut w = csv::Writer::from_path(path)?;
    w.write_record(s.headers)?;
    for r in &s.rows {
        w.write_record(r.iter().map(|c| c.strip_prefix('#').unwrap_or(c)))?;
    }
    w.flush()?;
    Ok(())
}

fn write_xlsx(s: &Sample, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let mut wb = Workbook::new();
    // A fixed creation time: the files are byte-for-byte the same on every run, so a
    // regenerated sample only shows in `git status` when its content changed.
    let created = ExcelDateTime::from_ymd(2026, 1, 1)?;
    wb.set_properties(&DocProperties::new().set_creation_datetime(&created));
    let bold = Format::new().set_bold();
    let text = Format::new().set_num_format("@");
    let ws = wb.add_worksheet();
    ws.set_name(s.sheet)?;
    for (c, h) in s.headers.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, *h, &bold)?;
        ws.set_column_width(c as u16, (h.len() + 6).max(14) as f64)?;
    }
    for (r, row) in s.rows.iter().enumerate() {
        let r = r as u32 + 1;
        for (c, v) in row.iter().enumerate() {
            if v.is_empty() {
                continue;
            }
            match v.strip_prefix('#') {
                Some(n) => {
                    ws.write_number(r, c as u16, n.parse::<f64>()?)?;
                }
                None => {
                    ws.write_string_with_format(r, c as u16, v, &text)?;
                }
            }
        }
    }
    ws.set_freeze_panes(1, 0)?;
    wb.save(path)?;
    Ok(())
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|s| s.to_string()).collect()
}

/// One Odin user: first, last, login (before the domain), extension, department, language,
/// site (`L` London, `N` New York), action.
type OdinPerson = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    char,
    &'static str,
);

/// Odin (BroadWorks): two groups of one enterprise, London and New York.
fn odin() -> Sample {
    let headers = &[
        "Service Provider",
        "Group",
        "User ID",
        "First Name",
        "Last Name",
        "Extension",
        "Web Password",
        "Email",
        "Department",
        "Phone",
        "Language",
        "Time Zone",
        "Address Line 1",
        "City",
        "State",
        "Postcode",
        "Country",
        "Action",
    ];
    // (first, last, user, ext, dept, language, site, action)
    let people: &[OdinPerson] = &[
        (
            "Oliver",
            "Bennett",
            "oliver.bennett",
            "2001",
            "Sales",
            "English",
            'L',
            "",
        ),
        (
            "Amelia",
            "Clarke",
            "amelia.clarke",
            "2002",
            "Sales",
            "English",
            'L',
            "",
        ),
        (
            "Harry",
            "O'Connor",
            "harry.oconnor",
            "2003",
            "Support",
            "English",
            'L',
            "",
        ),
        (
            "Isla",
            "Patel",
            "isla.patel",
            "2004",
            "Finance",
            "English",
            'L',
            "",
        ),
        (
            "Priya",
            "Shah",
            "priya.shah",
            "2005",
            "Engineering",
            "English",
            'L',
            "",
        ), // row 6: bad email
        (
            "Jack",
            "Nguyen",
            "jack.nguyen",
            "2006",
            "Engineering",
            "English",
            'L',
            "",
        ),
        (
            "Sophie",
            "Dubois",
            "sophie.dubois",
            "2007",
            "Marketing",
            "French",
            'L',
            "",
        ),
        (
            "Thomas",
            "Wright",
            "thomas.wright",
            "2008",
            "Support",
            "English",
            'L',
            "",
        ), // row 9: short password
        (
            "Zoë",
            "Müller",
            "zoe.mueller",
            "0420",
            "Engineering",
            "German",
            'L',
            "",
        ),
        (
            "George",
            "Evans",
            "george.evans",
            "2010",
            "Sales",
            "English",
            'L',
            "",
        ),
        (
            "Emily",
            "Hughes",
            "emily.hughes",
            "2011",
            "Finance",
            "English",
            'L',
            "",
        ),
        (
            "Daniel",
            "Kim",
            "daniel.kim",
            "3001",
            "Sales",
            "English",
            'N',
            "",
        ), // row 13: duplicate
        (
            "Olivia",
            "Martinez",
            "olivia.martinez",
            "3002",
            "Support",
            "Spanish",
            'N',
            "",
        ),
        (
            "Ethan",
            "Johnson",
            "ethan.johnson",
            "3003",
            "Engineering",
            "English",
            'N',
            "",
        ),
        (
            "Ava",
            "Williams",
            "ava.williams",
            "#3004",
            "Marketing",
            "English",
            'N',
            "",
        ), // row 16: numeric ext
        (
            "Noah",
            "Brown",
            "noah.brown",
            "3005",
            "Sales",
            "English",
            'N',
            "",
        ),
        (
            "Mia",
            "Rossi",
            "mia.rossi",
            "3006",
            "Finance",
            "Italian",
            'N',
            "",
        ),
        (
            "Daniel",
            "Kimura",
            "daniel.kim",
            "3007",
            "Support",
            "English",
            'N',
            "",
        ), // row 19: duplicate
        (
            "Lucas",
            "Silva",
            "lucas.silva",
            "3008",
            "Engineering",
            "Portuguese",
            'N',
            "",
        ),
        (
            "Chloe",
            "Anderson",
            "chloe.anderson",
            "3009",
            "Marketing",
            "English",
            'N',
            "",
        ),
        (
            "Liam",
            "",
            "liam.taylor",
            "3010",
            "Support",
            "English",
            'N',
            "",
        ), // row 22: no last name
        (
            "Grace",
            "Lee",
            "grace.lee",
            "3011",
            "Sales",
            "English",
            'N',
            "",
        ),
        (
            "Henry",
            "Davis",
            "henry.davis",
            "3012",
            "Engineering",
            "English",
            'N',
            "",
        ),
        (
            "Ruby",
            "Thompson",
            "ruby.thompson",
            "2012",
            "Support",
            "English",
            'L',
            "skip",
        ), // row 25
        (
            "Max",
            "de Vries",
            "max.devries",
            "2013",
            "Engineering",
            "Dutch",
            'L',
            "",
        ),
    ];
    let rows = people
        .iter()
        .enumerate()
        .map(|(i, &(first, last, user, ext, dept, lang, site, action))| {
            let sheet_row = i + 2;
            let digits = ext.trim_start_matches('#');
            let (group, tz, street, city, state, zip, country, phone) = if site == 'L' {
                (
                    "acme-london",
                    "Europe/London",
                    "1 Finsbury Avenue",
                    "London",
                    "Greater London",
                    "EC2M 2PP",
                    "GB",
                    format!("+44207946{digits}"),
                )
            } else {
                (
                    "acme-nyc",
                    "America/New_York",
                    "350 Fifth Avenue",
                    "New York",
                    "NY",
                    "10118",
                    "US",
                    format!("+1212555{digits}"),
                )
            };
            let password = if sheet_row == 9 {
                "Acme-1!".to_string()
            } else {
                format!("Welcome-{digits}!Acme")
            };
            let email = if sheet_row == 6 {
                "priya.shah.acme.example".to_string()
            } else {
                format!("{user}@acme.example")
            };
            vec![
                "acme-sp".to_string(),
                group.to_string(),
                format!("{user}@acme.example"),
                first.to_string(),
                last.to_string(),
                ext.to_string(),
                password,
                email,
                dept.to_string(),
                phone,
                lang.to_string(),
                tz.to_string(),
                street.to_string(),
                city.to_string(),
                state.to_string(),
                zip.to_string(),
                country.to_string(),
                action.to_string(),
            ]
        })
        .collect();
    Sample {
        stem: "odin",
        sheet: "New starters",
        headers,
        rows,
    }
}

/// SuperOffice CRM: a sales office's users, initials as the Name.
fn superoffice() -> Sample {
    let headers = &[
        "Initials",
        "Login Name",
        "First Name",
        "Last Name",
        "Email",
        "User Type",
        "Nickname",
        "Description",
        "Rank",
        "Role ID",
        "User Group ID",
        "Initial Password",
        "Action",
    ];
    // (initials, first, last, type, role, group, tooltip)
    let people: &[(&str, &str, &str, &str, &str, &str, &str)] = &[
        (
            "ABE",
            "Anna",
            "Berg",
            "InternalAssociate",
            "1",
            "2",
            "Sales, Oslo",
        ),
        (
            "BKR",
            "Bjørn",
            "Kristiansen",
            "InternalAssociate",
            "1",
            "2",
            "Sales, Oslo",
        ),
        (
            "CLA",
            "Clara",
            "Lund",
            "InternalAssociate",
            "2",
            "3",
            "Support, Oslo",
        ),
        (
            "DHA",
            "David",
            "Hansen",
            "InternalAssociate",
            "2",
            "3",
            "Support, Oslo",
        ),
        (
            "EJO",
            "Emma",
            "Johansen",
            "InternalAssociate",
            "1",
            "2",
            "Sales, Bergen",
        ), // row 6: bad email
        (
            "FNI",
            "Filip",
            "Nilsen",
            "InternalAssociate",
            "3",
            "4",
            "Marketing",
        ),
        (
            "GOL",
            "Greta",
            "Olsen",
            "InternalAssociate",
            "3",
            "4",
            "Marketing",
        ),
        (
            "HPE",
            "Henrik",
            "Pedersen",
            "InternalAssociate",
            "1",
            "2",
            "Sales, Bergen",
        ), // row 9: short pw
        (
            "IRA",
            "Ingrid",
            "Rasmussen",
            "InternalAssociate",
            "2",
            "3",
            "Support, Bergen",
        ),
        (
            "JSA",
            "Jonas",
            "Sandvik",
            "ResourceAssociate",
            "4",
            "5",
            "Meeting room planner",
        ),
        (
            "KTO",
            "Kari",
            "Toft",
            "InternalAssociate",
            "1",
            "2",
            "Sales, Oslo",
        ),
        (
            "LVI",
            "Lars",
            "Vik",
            "InternalAssociate",
            "1",
            "2",
            "Sales, Oslo",
        ), // row 13: duplicate
        (
            "MAA",
            "Maja",
            "Aas",
            "InternalAssociate",
            "2",
            "3",
            "Support, Oslo",
        ),
        (
            "NBR",
            "Nora",
            "Brekke",
            "InternalAssociate",
            "3",
            "4",
            "Marketing",
        ),
        (
            "OMO",
            "Ola",
            "Moen",
            "Internal",
            "1",
            "2",
            "Sales, Trondheim",
        ), // row 16: bad type
        (
            "PHA",
            "Petra",
            "Haugen",
            "InternalAssociate",
            "1",
            "2",
            "Sales, Trondheim",
        ),
        (
            "QEI",
            "Quentin",
            "Eide",
            "ExternalAssociate",
            "5",
            "6",
            "Partner, Acme Consulting",
        ),
        (
            "LVI",
            "Linnea",
            "Vikström",
            "InternalAssociate",
            "2",
            "3",
            "Support, Oslo",
        ), // row 19: duplicate
        (
            "RSO",
            "Rune",
            "Solberg",
            "InternalAssociate",
            "1",
            "2",
            "Sales, Oslo",
        ),
        (
            "SDA",
            "Siri",
            "Dahl",
            "InternalAssociate",
            "2",
            "3",
            "Support, Bergen",
        ),
        (
            "TLI",
            "Tor",
            "",
            "InternalAssociate",
            "1",
            "2",
            "Sales, Bergen",
        ), // row 22: no last name
        (
            "UHO",
            "Una",
            "Holm",
            "InternalAssociate",
            "3",
            "4",
            "Marketing",
        ),
        (
            "VBA",
            "Viktor",
            "Bakke",
            "InternalAssociate",
            "1",
            "2",
            "Sales, Oslo",
        ),
        (
            "WST",
            "Wenche",
            "Strand",
            "InternalAssociate",
            "2",
            "3",
            "Support, Oslo",
        ), // row 25: skip
        (
            "XNG",
            "Xander",
            "Ng",
            "InternalAssociate",
            "1",
            "2",
            "Sales, Oslo",
        ),
    ];
    let rows = people
        .iter()
        .enumerate()
        .map(|(i, &(initials, first, last, kind, role, group, tip))| {
            let sheet_row = i + 2;
            let login = format!(
                "{}.{}@acme.example",
                ascii(first),
                ascii(if last.is_empty() { "lie" } else { last })
            );
            let email = if sheet_row == 6 {
                "emma.johansen@acme".to_string()
            } else {
                login.clone()
            };
            let password = if sheet_row == 9 {
                "Hp2024".to_string()
            } else {
                format!("Start-{}-2024", initials.to_lowercase())
            };
            let nick = format!("{}{}", ascii(first).to_lowercase(), sheet_row);
            let action = if sheet_row == 25 { "skip" } else { "" };
            row(&[
                initials,
                &login,
                first,
                last,
                &email,
                kind,
                &nick,
                tip,
                &(sheet_row - 1).to_string(),
                role,
                group,
                &password,
                action,
            ])
        })
        .collect();
    Sample {
        stem: "superoffice",
        sheet: "Users",
        headers,
        rows,
    }
}

/// The generic users API: a customer portal's first users.
fn users_api() -> Sample {
    const APP: &str = "609543d6-1cca-4039-9c1a-c843bda15ba4";
    const GROUP: &str = "5fb6f5d6-3a6d-4e1d-83bb-7445274745bf";
    let headers = &[
        "Email",
        "Password",
        "Full Name",
        "Custom Data",
        "Apps",
        "Group IDs",
        "Action",
    ];
    let names = [
        "Jane Doe",
        "Marcus Reed",
        "Aisha Khan",
        "Tomás García",
        "Lena Fischer", // row 6: bad email
        "Kwame Mensah",
        "Hannah Cohen",
        "Yuki Tanaka", // row 9: short password
        "Fatima Zahra",
        "Peter Novak",
        "Ingrid Larsen",
        "Samuel Okoye", // row 13: duplicate
        "Chen Wei",
        "Lucia Romano",
        "Omar Haddad",
        "Grace Mwangi",
        "Julien Moreau",
        "Samuel Okoye", // row 19: duplicate
        "Nina Petrova",
        "Diego Alvarez",
        "", // row 22: no name
        "Sara Lindqvist",
        "Ravi Iyer",
        "Elif Demir", // row 25: skip
        "Owen Gallagher",
    ];
    let rows = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let sheet_row = i + 2;
            let email = match sheet_row {
                6 => "lena.fischer@@example.com".to_string(),
                19 => "samuel.okoye@example.com".to_string(),
                22 => "pat.quinn@example.com".to_string(),
                _ => format!(
                    "{}@example.com",
                    ascii(name).to_lowercase().replace(' ', ".")
                ),
            };
            let password = if sheet_row == 9 {
                "yuki1".to_string()
            } else {
                format!("Portal{}x", 1000 + sheet_row)
            };
            let custom = format!(
                r#"{{"employeeNumber": "E{}", "plan": "{}"}}"#,
                1000 + sheet_row,
                if sheet_row % 3 == 0 { "pro" } else { "basic" }
            );
            let groups = if sheet_row % 2 == 0 { GROUP } else { "" };
            let action = if sheet_row == 25 { "skip" } else { "" };
            row(&[&email, &password, name, &custom, APP, groups, action])
        })
        .collect();
    Sample {
        stem: "users-api",
        sheet: "Portal users",
        headers,
        rows,
    }
}

/// SCIM 2.0: an identity provider's new hires.
fn scim() -> Sample {
    let headers = &[
        "User Name",
        "First Name",
        "Last Name",
        "Display Name",
        "Work Email",
        "Work Phone",
        "Job Title",
        "Employee ID",
        "Enabled",
        "Initial Password",
        "Action",
    ];
    // (first, last, title, employee id)
    let people: &[(&str, &str, &str, &str)] = &[
        ("Barbara", "Jensen", "Tour Guide", "E1001"),
        ("Alan", "Turing", "Research Engineer", "E1002"),
        ("Grace", "Hopper", "Engineering Manager", "E1003"),
        ("Ada", "Lovelace", "Data Analyst", "E1004"),
        ("Linus", "Berg", "Support Engineer", "E1005"), // row 6: bad email
        ("Margaret", "Hamilton", "Software Architect", "E1006"),
        ("Dennis", "Ritchie", "Platform Engineer", "E1007"),
        ("Katherine", "Johnson", "Analyst", "E1008"), // row 9: short password
        ("Tim", "Berners-Lee", "Web Developer", "E1009"),
        ("Frances", "Allen", "Compiler Engineer", "E1010"),
        ("Ken", "Thompson", "Site Reliability Engineer", "E1011"),
        ("Radia", "Perlman", "Network Engineer", "E1012"), // row 13: duplicate
        ("Edsger", "Dijkstra", "Algorithms Lead", "E1013"),
        ("Hedy", "Lamarr", "Wireless Engineer", "E1014"),
        ("Donald", "Knuth", "Technical Writer", "#1015"), // row 16: numeric employee id
        ("Barbara", "Liskov", "Principal Engineer", "E1016"),
        ("John", "McCarthy", "AI Researcher", "E1017"),
        ("Radia", "Perlman", "Network Engineer", "E1018"), // row 19: duplicate
        ("Mary Ann", "Wilkes", "Systems Engineer", "E1019"), // row 20: space in user name
        ("Leslie", "Lamport", "Distributed Systems Lead", "E1020"),
        ("Sophie", "", "Product Manager", "E1021"), // row 22: no last name
        ("Bjarne", "Stroustrup", "C++ Engineer", "E1022"),
        ("Anita", "Borg", "Community Manager", "E1023"),
        ("Jean", "Sammet", "Language Designer", "E1024"), // row 25: skip
        ("Guido", "van Rossum", "Python Engineer", "E1025"),
    ];
    let rows = people
        .iter()
        .enumerate()
        .map(|(i, &(first, last, title, emp))| {
            let sheet_row = i + 2;
            let user = match sheet_row {
                20 => "mary ann.wilkes@example.com".to_string(),
                22 => "sophie.w@example.com".to_string(),
                _ => format!("{first}.{last}@example.com")
                    .to_lowercase()
                    .replace(' ', ""),
            };
            let email = match sheet_row {
                6 => "linus.berg(at)example.com".to_string(),
                20 => "maryann.wilkes@example.com".to_string(),
                _ => user.clone(),
            };
            let password = if sheet_row == 9 {
                "kj2024".to_string()
            } else {
                format!("Hire-{}-Day1", 1000 + sheet_row)
            };
            let phone = format!("+1 555 010 {:04}", 1000 + sheet_row);
            let display = if sheet_row % 4 == 0 {
                format!("{first} {last}")
            } else {
                String::new()
            };
            let enabled = if sheet_row == 24 { "no" } else { "yes" };
            let action = if sheet_row == 25 { "skip" } else { "" };
            row(&[
                &user, first, last, &display, &email, &phone, title, emp, enabled, &password,
                action,
            ])
        })
        .collect();
    Sample {
        stem: "scim",
        sheet: "New hires",
        headers,
        rows,
    }
}

/// Folds the few accented letters the samples use to ASCII, for logins and addresses.
fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'ø' => 'o',
            'ö' => 'o',
            'ë' => 'e',
            'ü' => 'u',
            'á' => 'a',
            'í' => 'i',
            _ => c,
        })
        .collect()
}
