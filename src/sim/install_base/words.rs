//! Vocabulary for names, logins and contacts.

use super::Gen;

pub const COMPANY_WORDS: &[&str] = &[
    "northwind",
    "contoso",
    "fabrikam",
    "tailspin",
    "adventure",
    "wingtip",
    "litware",
    "proseware",
    "alpine",
    "coho",
    "lucerne",
    "margie",
    "humongous",
    "trey",
    "woodgrove",
    "datum",
    "southridge",
    "fourthcoffee",
    "blueyonder",
    "graphicdesign",
    "wideworld",
    "relecloud",
    "lamna",
    "consolidated",
    "bellows",
    "fineart",
    "nod",
    "vanarsdel",
];

pub const TRADE_WORDS: &[&str] = &[
    "dental",
    "legal",
    "it",
    "accounting",
    "clinic",
    "logistics",
    "studio",
    "bakery",
    "motors",
    "consulting",
    "realty",
    "pharmacy",
    "school",
    "hotel",
    "farms",
    "labs",
    "media",
    "builders",
    "travel",
    "insurance",
    "backup",
    "cloud",
    "systems",
    "partners",
    "solutions",
    "networks",
];

pub const FIRST_NAMES: &[&str] = &[
    "anna", "ben", "carla", "david", "elena", "frank", "grace", "hugo", "irene", "jack", "karin",
    "liam", "maria", "noah", "olga", "peter", "quinn", "rosa", "samuel", "tina", "umar", "vera",
    "walter", "xenia", "yusuf", "zoe", "ahmed", "bianca", "chen", "dmitri", "emma", "felix",
    "giulia", "hiro", "ines", "jonas",
];

pub const LAST_NAMES: &[&str] = &[
    "smith", "mueller", "garcia", "rossi", "novak", "tanaka", "kowalski", "johnson", "dubois",
    "jansen", "petrov", "silva", "nielsen", "schmidt", "brown", "wilson", "lopez", "fischer",
    "martin", "kim", "ivanova", "andersen", "moreau", "weber", "costa", "horvat", "larsen", "berg",
    "young", "walker",
];

pub fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

pub struct Person {
    pub first: &'static str,
    pub last: &'static str,
}

impl Person {
    pub fn random(g: &mut Gen) -> Self {
        Self {
            first: *g.pick(FIRST_NAMES),
            last: *g.pick(LAST_NAMES),
        }
    }

    pub fn first_name(&self) -> String {
        capitalize(self.first)
    }

    pub fn last_name(&self) -> String {
        capitalize(self.last)
    }

    pub fn email(&self, domain: &str) -> String {
        format!("{}.{}@{domain}", self.first, self.last)
    }
}

/// A company's two name words, e.g. ("northwind", "dental").
pub fn company(g: &mut Gen) -> (&'static str, &'static str) {
    (*g.pick(COMPANY_WORDS), *g.pick(TRADE_WORDS))
}

pub fn domain(a: &str, b: &str, serial: usize) -> String {
    format!("{a}-{b}{serial}.example.com")
}

pub fn phone(g: &mut Gen) -> String {
    format!("+1-555-{:03}-{:04}", g.range(100..1000), g.range(0..10_000))
}
