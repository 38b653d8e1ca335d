//! A deterministic generator of the eight TPC-H tables, written from the
//! rules of the TPC-H specification (cardinalities, keys, value domains and
//! distributions), not from its reference generator: the data has the spec's
//! shape but is not byte-identical to `dbgen`'s.
//!
//! Every row is drawn from its own random stream, seeded from the table and the
//! row's unit index, so rows can be produced in any order and chunks streamed
//! without holding a table in memory; the same scale factor always produces the
//! same bytes. A "unit" is one row, except for `partsupp` (the four rows of one
//! part) and `lineitem` (the one to seven lines of one order, which share the
//! order's random stream so that `orders` and `lineitem` agree).
//!
//! Rows are written as CSV lines (comma-separated, RFC 4180 quoting where a
//! field needs it; the generated text never does), ready for
//! `COPY … FROM STDIN WITH (FORMAT csv)` or PostgreSQL's `\copy`.

use std::fmt::Write;

/// The spec's "current date" (1995-06-17) that decides line status and return flags.
const CURRENT_DATE: i32 = days_from_civil(1995, 6, 17);
/// The first order date (1992-01-01).
const START_DATE: i32 = days_from_civil(1992, 1, 1);
/// The last date of the data (1998-12-31); orders end 151 days before it.
const END_DATE: i32 = days_from_civil(1998, 12, 31);

/// The spec's five regions, in key order.
pub const REGIONS: [&str; 5] = ["AFRICA", "AMERICA", "ASIA", "EUROPE", "MIDDLE EAST"];

/// The spec's 25 nations with their region keys, in key order.
pub const NATIONS: [(&str, i64); 25] = [
    ("ALGERIA", 0),
    ("ARGENTINA", 1),
    ("BRAZIL", 1),
    ("CANADA", 1),
    ("EGYPT", 4),
    ("ETHIOPIA", 0),
    ("FRANCE", 3),
    ("GERMANY", 3),
    ("INDIA", 2),
    ("INDONESIA", 2),
    ("IRAN", 4),
    ("IRAQ", 4),
    ("JAPAN", 2),
    ("JORDAN", 4),
    ("KENYA", 0),
    ("MOROCCO", 0),
    ("MOZAMBIQUE", 0),
    ("PERU", 1),
    ("CHINA", 2),
    ("ROMANIA", 3),
    ("SAUDI ARABIA", 4),
    ("VIETNAM", 2),
    ("RUSSIA", 3),
    ("UNITED KINGDOM", 3),
    ("UNITED STATES", 1),
];

/// The words part names are made of (five distinct ones per part).
pub const COLORS: [&str; 92] = [
    "almond",
    "antique",
    "aquamarine",
    "azure",
    "beige",
    "bisque",
    "black",
    "blanched",
    "blue",
    "blush",
    "brown",
    "burlywood",
    "burnished",
    "chartreuse",
    "chiffon",
    "chocolate",
    "coral",
    "cornflower",
    "cornsilk",
    "cream",
    "cyan",
    "dark",
    "deep",
    "dim",
    "dodger",
    "drab",
    "firebrick",
    "floral",
    "forest",
    "frosted",
    "gainsboro",
    "ghost",
    "goldenrod",
    "green",
    "grey",
    "honeydew",
    "hot",
    "indian",
    "ivory",
    "khaki",
    "lace",
    "lavender",
    "lawn",
    "lemon",
    "light",
    "lime",
    "linen",
    "magenta",
    "maroon",
    "medium",
    "metallic",
    "midnight",
    "mint",
    "misty",
    "moccasin",
    "navajo",
    "navy",
    "olive",
    "orange",
    "orchid",
    "pale",
    "papaya",
    "peach",
    "peru",
    "pink",
    "plum",
    "powder",
    "puff",
    "purple",
    "red",
    "rose",
    "rosy",
    "royal",
    "saddle",
    "salmon",
    "sandy",
    "seashell",
    "sienna",
    "sky",
    "slate",
    "smoke",
    "snow",
    "spring",
    "steel",
    "tan",
    "thistle",
    "tomato",
    "turquoise",
    "violet",
    "wheat",
    "white",
    "yellow",
];

const TYPE_SIZE: [&str; 6] = ["STANDARD", "SMALL", "MEDIUM", "LARGE", "ECONOMY", "PROMO"];
const TYPE_FINISH: [&str; 5] = ["ANODIZED", "BURNISHED", "PLATED", "POLISHED", "BRUSHED"];
const TYPE_METAL: [&str; 5] = ["TIN", "NICKEL", "BRASS", "STEEL", "COPPER"];
const CONTAINER_SIZE: [&str; 5] = ["SM", "LG", "MED", "JUMBO", "WRAP"];
const CONTAINER_KIND: [&str; 8] = ["CASE", "BOX", "BAG", "JAR", "PKG", "PACK", "CAN", "DRUM"];
const SEGMENTS: [&str; 5] = [
    "AUTOMOBILE",
    "BUILDING",
    "FURNITURE",
    "MACHINERY",
    "HOUSEHOLD",
];
const PRIORITIES: [&str; 5] = ["1-URGENT", "2-HIGH", "3-MEDIUM", "4-NOT SPECIFIED", "5-LOW"];
const INSTRUCTIONS: [&str; 4] = [
    "DELIVER IN PERSON",
    "COLLECT COD",
    "NONE",
    "TAKE BACK RETURN",
];
const SHIP_MODES: [&str; 7] = ["REG AIR", "AIR", "RAIL", "SHIP", "TRUCK", "MAIL", "FOB"];

// Words of the comments' pseudo-text (our own small vocabulary; the text has
// the spec's flavour, noun phrases and verbs, not its exact grammar).
const NOUNS: [&str; 24] = [
    "packages",
    "requests",
    "accounts",
    "deposits",
    "foxes",
    "ideas",
    "theodolites",
    "pinto beans",
    "instructions",
    "dependencies",
    "excuses",
    "platelets",
    "asymptotes",
    "courts",
    "dolphins",
    "multipliers",
    "sauternes",
    "warthogs",
    "frets",
    "dinos",
    "attainments",
    "somas",
    "tithes",
    "patterns",
];
const VERBS: [&str; 20] = [
    "sleep",
    "wake",
    "are",
    "cajole",
    "haggle",
    "nag",
    "use",
    "boost",
    "affix",
    "detect",
    "integrate",
    "maintain",
    "nod",
    "lose",
    "solve",
    "thrash",
    "promise",
    "engage",
    "print",
    "serve",
];
const ADJECTIVES: [&str; 20] = [
    "special", "furious", "sly", "careful", "blithe", "quick", "fluffy", "slow", "quiet",
    "ruthless", "thin", "close", "dogged", "daring", "bold", "final", "ironic", "even", "regular",
    "pending",
];
const ADVERBS: [&str; 12] = [
    "sometimes",
    "always",
    "never",
    "furiously",
    "slyly",
    "carefully",
    "blithely",
    "quickly",
    "fluffily",
    "slowly",
    "quietly",
    "ruthlessly",
];

/// The eight tables, in load order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Region,
    Nation,
    Supplier,
    Part,
    PartSupp,
    Customer,
    Orders,
    LineItem,
}

pub const TABLES: [Table; 8] = [
    Table::Region,
    Table::Nation,
    Table::Supplier,
    Table::Part,
    Table::PartSupp,
    Table::Customer,
    Table::Orders,
    Table::LineItem,
];

/// The cardinalities of one scale factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scale {
    pub suppliers: i64,
    pub parts: i64,
    pub customers: i64,
    pub orders: i64,
    /// Clerks `o_clerk` is drawn from.
    pub clerks: i64,
}

impl Scale {
    /// The spec's base cardinalities times `sf` (at least 4 suppliers, so
    /// that every part has four distinct ones, and at least one of the rest).
    pub fn new(sf: f64) -> Self {
        let n = |base: f64, min: i64| ((base * sf).round() as i64).max(min);
        Scale {
            suppliers: n(10_000.0, 4),
            parts: n(200_000.0, 1),
            customers: n(150_000.0, 3),
            orders: n(1_500_000.0, 1),
            clerks: n(1_000.0, 1),
        }
    }
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Table::Region => "region",
            Table::Nation => "nation",
            Table::Supplier => "supplier",
            Table::Part => "part",
            Table::PartSupp => "partsupp",
            Table::Customer => "customer",
            Table::Orders => "orders",
            Table::LineItem => "lineitem",
        }
    }

    /// How many units (see the module doc) the table has.
    pub fn units(self, s: &Scale) -> i64 {
        match self {
            Table::Region => 5,
            Table::Nation => 25,
            Table::Supplier => s.suppliers,
            Table::Part | Table::PartSupp => s.parts,
            Table::Customer => s.customers,
            Table::Orders | Table::LineItem => s.orders,
        }
    }

    /// Appends the CSV lines of unit `i` (0-based) to `out`; returns how many.
    pub fn write_unit(self, s: &Scale, i: i64, out: &mut String) -> usize {
        match self {
            Table::Region => region(i, out),
            Table::Nation => nation(i, out),
            Table::Supplier => supplier(i + 1, out),
            Table::Part => part(i + 1, out),
            Table::PartSupp => partsupp(s, i + 1, out),
            Table::Customer => customer(i + 1, out),
            Table::Orders => {
                let o = Order::new(s, i + 1);
                o.write(out);
                1
            }
            Table::LineItem => {
                let o = Order::new(s, i + 1);
                o.write_lines(out)
            }
        }
    }
}

/// SplitMix64: small, fast, seedable per row, and fixed here so that the data
/// never changes with a dependency's version.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// The stream of unit `unit` of the table numbered `stream`.
    pub fn for_row(stream: u64, unit: i64) -> Self {
        let mut r = Rng(stream.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ (unit as u64));
        // Decorrelate neighbouring seeds.
        r.0 = r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = (hi - lo + 1) as u64;
        lo + (self.next_u64() % span) as i64
    }

    pub fn pick<'a>(&mut self, words: &[&'a str]) -> &'a str {
        words[self.range(0, words.len() as i64 - 1) as usize]
    }
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
pub const fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe as u32 * 365 + yoe as u32 / 4 - yoe as u32 / 100 + doy;
    era * 146_097 + doe as i32 - 719_468
}

/// The civil date of a day number (inverse of [`days_from_civil`]).
pub fn civil_from_days(z: i32) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u32;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe as i32 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// One CSV line being written.
struct Line<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Line<'a> {
    fn new(out: &'a mut String) -> Self {
        Line { out, first: true }
    }

    fn sep(&mut self) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
    }

    fn text(mut self, s: &str) -> Self {
        self.sep();
        if s.contains([',', '"', '\n', '\r']) || s.is_empty() {
            self.out.push('"');
            self.out.push_str(&s.replace('"', "\"\""));
            self.out.push('"');
        } else {
            self.out.push_str(s);
        }
        self
    }

    fn int(mut self, v: i64) -> Self {
        self.sep();
        let _ = write!(self.out, "{v}");
        self
    }

    /// A DECIMAL(15,2) from hundredths.
    fn cents(mut self, v: i64) -> Self {
        self.sep();
        let sign = if v < 0 { "-" } else { "" };
        let a = v.unsigned_abs();
        let _ = write!(self.out, "{sign}{}.{:02}", a / 100, a % 100);
        self
    }

    fn date(mut self, days: i32) -> Self {
        self.sep();
        let (y, m, d) = civil_from_days(days);
        let _ = write!(self.out, "{y:04}-{m:02}-{d:02}");
        self
    }

    fn end(self) {
        self.out.push('\n');
    }
}

/// Pseudo-text of a length drawn from `lo..=hi` (words, cut at the length).
fn comment(r: &mut Rng, lo: i64, hi: i64) -> String {
    let len = r.range(lo, hi) as usize;
    let mut s = String::with_capacity(len + 16);
    while s.len() < len {
        if !s.is_empty() {
            s.push(' ');
        }
        match r.range(0, 9) {
            0..=2 => {
                s.push_str(r.pick(&ADJECTIVES));
                s.push(' ');
                s.push_str(r.pick(&NOUNS));
            }
            3..=5 => s.push_str(r.pick(&NOUNS)),
            6..=7 => s.push_str(r.pick(&VERBS)),
            _ => s.push_str(r.pick(&ADVERBS)),
        }
    }
    s.truncate(len);
    s.trim_end().to_string()
}

/// Random alphanumeric text (addresses), length drawn from `lo..=hi`.
fn vstring(r: &mut Rng, lo: i64, hi: i64) -> String {
    const CHARS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .";
    let len = r.range(lo, hi);
    (0..len)
        .map(|_| CHARS[r.range(0, CHARS.len() as i64 - 1) as usize] as char)
        .collect::<String>()
        .trim()
        .to_string()
}

fn phone(r: &mut Rng, nation: i64) -> String {
    format!(
        "{}-{}-{}-{}",
        nation + 10,
        r.range(100, 999),
        r.range(100, 999),
        r.range(1000, 9999)
    )
}

const S_REGION: u64 = 1;
const S_NATION: u64 = 2;
const S_SUPPLIER: u64 = 3;
const S_PART: u64 = 4;
const S_PARTSUPP: u64 = 5;
const S_CUSTOMER: u64 = 6;
const S_ORDER: u64 = 7;

fn region(i: i64, out: &mut String) -> usize {
    let mut r = Rng::for_row(S_REGION, i);
    Line::new(out)
        .int(i)
        .text(REGIONS[i as usize])
        .text(&comment(&mut r, 31, 115))
        .end();
    1
}

fn nation(i: i64, out: &mut String) -> usize {
    let mut r = Rng::for_row(S_NATION, i);
    let (name, region) = NATIONS[i as usize];
    Line::new(out)
        .int(i)
        .text(name)
        .int(region)
        .text(&comment(&mut r, 31, 114))
        .end();
    1
}

fn supplier(key: i64, out: &mut String) -> usize {
    let mut r = Rng::for_row(S_SUPPLIER, key);
    let nation = r.range(0, 24);
    let address = vstring(&mut r, 10, 40);
    let phone = phone(&mut r, nation);
    let acctbal = r.range(-99_999, 999_999);
    let mut text = comment(&mut r, 25, 100);
    // The spec plants "Customer … Complaints" in 5 of every 10,000 suppliers'
    // comments and "Customer … Recommends" in 5 others (Q16 looks for them).
    let plant = r.range(0, 9_999);
    if plant < 10 {
        let tail = if plant < 5 {
            "Complaints"
        } else {
            "Recommends"
        };
        let keep = text.len().min(20);
        text.truncate(keep);
        text = format!(
            "{} Customer {} {tail}",
            text.trim_end(),
            comment(&mut r, 5, 15)
        );
    }
    Line::new(out)
        .int(key)
        .text(&format!("Supplier#{key:09}"))
        .text(&address)
        .int(nation)
        .text(&phone)
        .cents(acctbal)
        .text(&text)
        .end();
    1
}

/// The spec's retail price of a part, in cents.
pub fn retail_price_cents(partkey: i64) -> i64 {
    90_000 + ((partkey / 10) % 20_001) + 100 * (partkey % 1_000)
}

fn part(key: i64, out: &mut String) -> usize {
    let mut r = Rng::for_row(S_PART, key);
    let mut words: Vec<&str> = Vec::with_capacity(5);
    while words.len() < 5 {
        let w = r.pick(&COLORS);
        if !words.contains(&w) {
            words.push(w);
        }
    }
    let m = r.range(1, 5);
    let n = r.range(1, 5);
    let ptype = format!(
        "{} {} {}",
        r.pick(&TYPE_SIZE),
        r.pick(&TYPE_FINISH),
        r.pick(&TYPE_METAL)
    );
    let size = r.range(1, 50);
    let container = format!("{} {}", r.pick(&CONTAINER_SIZE), r.pick(&CONTAINER_KIND));
    Line::new(out)
        .int(key)
        .text(&words.join(" "))
        .text(&format!("Manufacturer#{m}"))
        .text(&format!("Brand#{m}{n}"))
        .text(&ptype)
        .int(size)
        .text(&container)
        .cents(retail_price_cents(key))
        .text(&comment(&mut r, 5, 22))
        .end();
    1
}

/// The `i`th (0..4) supplier of a part: the spec's formula, spread over the
/// suppliers; a collision (possible only at tiny scales) moves to the next key.
pub fn part_supplier(s: &Scale, partkey: i64, i: i64) -> i64 {
    let n = s.suppliers;
    let step = n / 4 + (partkey - 1) / n;
    let mut keys = [0i64; 4];
    for j in 0..=i as usize {
        let mut k = (partkey + j as i64 * step) % n + 1;
        while keys[..j].contains(&k) {
            k = k % n + 1;
        }
        keys[j] = k;
    }
    keys[i as usize]
}

fn partsupp(s: &Scale, partkey: i64, out: &mut String) -> usize {
    let mut r = Rng::for_row(S_PARTSUPP, partkey);
    for i in 0..4 {
        Line::new(out)
            .int(partkey)
            .int(part_supplier(s, partkey, i))
            .int(r.range(1, 9_999))
            .cents(r.range(100, 100_000))
            .text(&comment(&mut r, 49, 198))
            .end();
    }
    4
}

fn customer(key: i64, out: &mut String) -> usize {
    let mut r = Rng::for_row(S_CUSTOMER, key);
    let address = vstring(&mut r, 10, 40);
    let nation = r.range(0, 24);
    let phone = phone(&mut r, nation);
    let acctbal = r.range(-99_999, 999_999);
    let segment = r.pick(&SEGMENTS);
    Line::new(out)
        .int(key)
        .text(&format!("Customer#{key:09}"))
        .text(&address)
        .int(nation)
        .text(&phone)
        .cents(acctbal)
        .text(segment)
        .text(&comment(&mut r, 29, 116))
        .end();
    1
}

/// The spec's sparse order keys: of every 32 keys, the first 8 are used.
pub fn order_key(index: i64) -> i64 {
    let i = index - 1;
    (i / 8) * 32 + i % 8 + 1
}

/// One line item of an order.
#[derive(Clone, Debug)]
pub struct LineItem {
    pub partkey: i64,
    pub suppkey: i64,
    pub linenumber: i64,
    pub quantity: i64,
    /// Cents.
    pub extendedprice: i64,
    /// Hundredths (0..=10).
    pub discount: i64,
    /// Hundredths (0..=8).
    pub tax: i64,
    pub returnflag: &'static str,
    pub linestatus: &'static str,
    pub shipdate: i32,
    pub commitdate: i32,
    pub receiptdate: i32,
    pub shipinstruct: &'static str,
    pub shipmode: &'static str,
    pub comment: String,
}

/// One order and its line items.
#[derive(Clone, Debug)]
pub struct Order {
    pub orderkey: i64,
    pub custkey: i64,
    pub orderstatus: &'static str,
    /// Cents.
    pub totalprice: i64,
    pub orderdate: i32,
    pub orderpriority: &'static str,
    pub clerk: i64,
    pub comment: String,
    pub lines: Vec<LineItem>,
}

impl Order {
    /// The order of 1-based index `index` (its key is [`order_key`]).
    pub fn new(s: &Scale, index: i64) -> Self {
        let mut r = Rng::for_row(S_ORDER, index);
        let orderkey = order_key(index);
        // Only customers whose key is not a multiple of 3 place orders: the
        // k-th such key (0-based) is k/2*3 + k%2 + 1.
        let ordering = s.customers - s.customers / 3;
        let k = r.range(0, ordering - 1);
        let custkey = (k / 2) * 3 + k % 2 + 1;
        let orderdate = r.range(i64::from(START_DATE), i64::from(END_DATE - 151)) as i32;
        let orderpriority = r.pick(&PRIORITIES);
        let clerk = r.range(1, s.clerks);
        let order_comment = comment(&mut r, 19, 78);
        let count = r.range(1, 7);
        let mut lines = Vec::with_capacity(count as usize);
        let mut totalprice = 0;
        for linenumber in 1..=count {
            let partkey = r.range(1, s.parts);
            let suppkey = part_supplier(s, partkey, r.range(0, 3));
            let quantity = r.range(1, 50);
            let extendedprice = quantity * retail_price_cents(partkey);
            let discount = r.range(0, 10);
            let tax = r.range(0, 8);
            let shipdate = orderdate + r.range(1, 121) as i32;
            let commitdate = orderdate + r.range(30, 90) as i32;
            let receiptdate = shipdate + r.range(1, 30) as i32;
            let returnflag = if receiptdate <= CURRENT_DATE {
                if r.range(0, 1) == 0 { "R" } else { "A" }
            } else {
                "N"
            };
            let linestatus = if shipdate > CURRENT_DATE { "O" } else { "F" };
            // extendedprice * (1 + tax) * (1 - discount), rounded to the cent.
            let charge = extendedprice * (100 + tax) * (100 - discount);
            totalprice += (charge + 5_000) / 10_000;
            lines.push(LineItem {
                partkey,
                suppkey,
                linenumber,
                quantity,
                extendedprice,
                discount,
                tax,
                returnflag,
                linestatus,
                shipdate,
                commitdate,
                receiptdate,
                shipinstruct: r.pick(&INSTRUCTIONS),
                shipmode: r.pick(&SHIP_MODES),
                comment: comment(&mut r, 10, 43),
            });
        }
        let orderstatus = if lines.iter().all(|l| l.linestatus == "F") {
            "F"
        } else if lines.iter().all(|l| l.linestatus == "O") {
            "O"
        } else {
            "P"
        };
        Order {
            orderkey,
            custkey,
            orderstatus,
            totalprice,
            orderdate,
            orderpriority,
            clerk,
            comment: order_comment,
            lines,
        }
    }

    fn write(&self, out: &mut String) {
        Line::new(out)
            .int(self.orderkey)
            .int(self.custkey)
            .text(self.orderstatus)
            .cents(self.totalprice)
            .date(self.orderdate)
            .text(self.orderpriority)
            .text(&format!("Clerk#{:09}", self.clerk))
            .int(0)
            .text(&self.comment)
            .end();
    }

    fn write_lines(&self, out: &mut String) -> usize {
        for l in &self.lines {
            Line::new(out)
                .int(self.orderkey)
                .int(l.partkey)
                .int(l.suppkey)
                .int(l.linenumber)
                .int(l.quantity)
                .cents(l.extendedprice)
                .cents(l.discount)
                .cents(l.tax)
                .text(l.returnflag)
                .text(l.linestatus)
                .date(l.shipdate)
                .date(l.commitdate)
                .date(l.receiptdate)
                .text(l.shipinstruct)
                .text(l.shipmode)
                .text(&l.comment)
                .end();
        }
        self.lines.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(t: Table, s: &Scale, units: std::ops::Range<i64>) -> Vec<String> {
        let mut out = String::new();
        for i in units {
            t.write_unit(s, i, &mut out);
        }
        out.lines().map(str::to_string).collect()
    }

    #[test]
    fn dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(START_DATE), (1992, 1, 1));
        assert_eq!(civil_from_days(END_DATE - 151), (1998, 8, 2));
        for d in START_DATE - 800..END_DATE + 800 {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }

    #[test]
    fn same_scale_same_bytes() {
        let s = Scale::new(0.01);
        for t in TABLES {
            let n = t.units(&s).min(300);
            assert_eq!(lines(t, &s, 0..n), lines(t, &s, 0..n), "{t:?}");
        }
    }

    #[test]
    fn cardinalities_follow_the_spec() {
        let s = Scale::new(0.01);
        assert_eq!(
            (s.suppliers, s.parts, s.customers, s.orders),
            (100, 2_000, 1_500, 15_000)
        );
        let s1 = Scale::new(1.0);
        assert_eq!(
            (s1.suppliers, s1.parts, s1.customers, s1.orders),
            (10_000, 200_000, 150_000, 1_500_000)
        );
        assert_eq!(lines(Table::Nation, &s, 0..25).len(), 25);
        assert_eq!(lines(Table::PartSupp, &s, 0..s.parts).len(), 8_000);
        let items = lines(Table::LineItem, &s, 0..s.orders).len() as f64;
        // 1..7 lines per order, 4 on average.
        assert!((items / s.orders as f64 - 4.0).abs() < 0.1, "{items}");
        assert_eq!(COLORS.len(), 92);
    }

    #[test]
    fn partsupp_keys_are_distinct_and_in_range() {
        for sf in [0.0005, 0.01, 0.1] {
            let s = Scale::new(sf);
            for p in 1..=s.parts.min(20_000) {
                let mut keys: Vec<i64> = (0..4).map(|i| part_supplier(&s, p, i)).collect();
                assert!(keys.iter().all(|k| (1..=s.suppliers).contains(k)));
                keys.sort_unstable();
                keys.dedup();
                assert_eq!(keys.len(), 4, "sf {sf} part {p}");
            }
        }
    }

    #[test]
    fn orders_follow_the_rules() {
        let s = Scale::new(0.01);
        let mut keys = Vec::new();
        for i in 1..=s.orders {
            let o = Order::new(&s, i);
            keys.push(o.orderkey);
            assert_ne!(o.custkey % 3, 0);
            assert!((1..=s.customers).contains(&o.custkey));
            assert!((START_DATE..=END_DATE - 151).contains(&o.orderdate));
            let mut total = 0;
            for l in &o.lines {
                assert!(l.shipdate > o.orderdate && l.shipdate <= o.orderdate + 121);
                assert!(l.receiptdate > l.shipdate && l.receiptdate <= l.shipdate + 30);
                assert!(l.commitdate >= o.orderdate + 30 && l.commitdate <= o.orderdate + 90);
                assert_eq!(l.extendedprice, l.quantity * retail_price_cents(l.partkey));
                assert_eq!(l.linestatus == "O", l.shipdate > CURRENT_DATE);
                assert_eq!(l.returnflag == "N", l.receiptdate > CURRENT_DATE);
                let ok = (0..4).any(|j| part_supplier(&s, l.partkey, j) == l.suppkey);
                assert!(ok, "lineitem supplier supplies the part");
                total += (l.extendedprice * (100 + l.tax) * (100 - l.discount) + 5_000) / 10_000;
            }
            assert_eq!(total, o.totalprice);
        }
        // Sparse: 8 used out of every 32, strictly increasing.
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(keys[..9], [1, 2, 3, 4, 5, 6, 7, 8, 33]);
    }

    #[test]
    fn part_rows_have_the_spec_domains() {
        let s = Scale::new(0.01);
        for line in lines(Table::Part, &s, 0..500) {
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f.len(), 9, "{line}");
            assert_eq!(f[1].split(' ').count(), 5);
            assert!(f[2].starts_with("Manufacturer#"));
            assert_eq!(&f[3][..6], "Brand#");
            assert_eq!(f[2].as_bytes()[13], f[3].as_bytes()[6], "brand of its mfgr");
            assert_eq!(f[4].split(' ').count(), 3);
        }
        assert_eq!(retail_price_cents(1), 90_000 + 100);
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        let mut s = String::new();
        Line::new(&mut s).text("a,b").text("x\"y").cents(-5).end();
        assert_eq!(s, "\"a,b\",\"x\"\"y\",-0.05\n");
    }
}
