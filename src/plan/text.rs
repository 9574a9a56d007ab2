//! Characters a person cannot see: what a key may hold, and what no cell may send unannounced.
//!
//! Two accounts for one person begin with a key that looks the same and is not: a zero-width
//! space pasted from a web page, a soft hyphen from a word processor, a decomposed `é` from a
//! Mac, a Cyrillic `о` among Latin letters. Keys are put in one form (Unicode NFC, outer
//! white space of any kind trimmed) before the duplicate check and before they are sent; a key
//! that still holds an invisible character is refused with the character named, since no
//! rule could say which of the two spellings the person meant. Characters that change how
//! text is displayed (bidirectional overrides and isolates) are refused in every column.

use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};
use unicode_script::{Script, UnicodeScript};

use crate::profile::EmailRule;

/// Invisible or layout-changing characters, with the names a person can search for.
const NAMED: &[(char, &str)] = &[
    ('\u{00A0}', "NO-BREAK SPACE"),
    ('\u{00AD}', "SOFT HYPHEN"),
    ('\u{034F}', "COMBINING GRAPHEME JOINER"),
    ('\u{061C}', "ARABIC LETTER MARK"),
    ('\u{115F}', "HANGUL CHOSEONG FILLER"),
    ('\u{1160}', "HANGUL JUNGSEONG FILLER"),
    ('\u{180E}', "MONGOLIAN VOWEL SEPARATOR"),
    ('\u{2007}', "FIGURE SPACE"),
    ('\u{200B}', "ZERO WIDTH SPACE"),
    ('\u{200C}', "ZERO WIDTH NON-JOINER"),
    ('\u{200D}', "ZERO WIDTH JOINER"),
    ('\u{200E}', "LEFT-TO-RIGHT MARK"),
    ('\u{200F}', "RIGHT-TO-LEFT MARK"),
    ('\u{202A}', "LEFT-TO-RIGHT EMBEDDING"),
    ('\u{202B}', "RIGHT-TO-LEFT EMBEDDING"),
    ('\u{202C}', "POP DIRECTIONAL FORMATTING"),
    ('\u{202D}', "LEFT-TO-RIGHT OVERRIDE"),
    ('\u{202E}', "RIGHT-TO-LEFT OVERRIDE"),
    ('\u{202F}', "NARROW NO-BREAK SPACE"),
    ('\u{2060}', "WORD JOINER"),
    ('\u{2061}', "FUNCTION APPLICATION"),
    ('\u{2062}', "INVISIBLE TIMES"),
    ('\u{2063}', "INVISIBLE SEPARATOR"),
    ('\u{2064}', "INVISIBLE PLUS"),
    ('\u{2066}', "LEFT-TO-RIGHT ISOLATE"),
    ('\u{2067}', "RIGHT-TO-LEFT ISOLATE"),
    ('\u{2068}', "FIRST STRONG ISOLATE"),
    ('\u{2069}', "POP DIRECTIONAL ISOLATE"),
    ('\u{3164}', "HANGUL FILLER"),
    ('\u{FEFF}', "ZERO WIDTH NO-BREAK SPACE (BOM)"),
    ('\u{FFA0}', "HALFWIDTH HANGUL FILLER"),
];

/// Characters that reorder how the text around them is displayed.
fn reorders(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Not seen, or seen as a plain space, yet not a plain space: format characters, control
/// characters and the space separators other than U+0020.
fn invisible(c: char) -> bool {
    c.is_control()
        || NAMED.binary_search_by_key(&c, |&(n, _)| n).is_ok()
        || matches!(c,
            '\u{2000}'..='\u{200A}'
            | '\u{205F}'
            | '\u{3000}'
            | '\u{206A}'..='\u{206F}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E007F}')
}

/// `U+200B ZERO WIDTH SPACE`.
fn name(c: char) -> String {
    match NAMED.binary_search_by_key(&c, |&(n, _)| n) {
        Ok(i) => format!("U+{:04X} {}", c as u32, NAMED[i].1),
        Err(_) if c.is_control() => format!("U+{:04X} (a control character)", c as u32),
        Err(_) => format!("U+{:04X} (an invisible character)", c as u32),
    }
}

/// Where `c` is in `text`, in words: `after "smi"`.
fn place(text: &str, at: usize) -> String {
    let before: String = text[..at]
        .chars()
        .rev()
        .take(12)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if before.is_empty() {
        "at the start".to_string()
    } else {
        format!("after {before:?}")
    }
}

/// The one form a key is compared and sent in: trimmed (white space of any kind) and NFC.
/// Borrowed when it is already so (every ASCII key).
pub fn key_form(key: &str) -> std::borrow::Cow<'_, str> {
    let t = key.trim();
    if t.is_ascii() || is_nfc_quick(t.chars()) == IsNormalized::Yes {
        std::borrow::Cow::Borrowed(t)
    } else {
        std::borrow::Cow::Owned(t.nfc().collect())
    }
}

/// Checks a key (already in [`key_form`]). `Err`: why it is refused. `Ok(Some)`: a warning.
pub fn check_key(key: &str) -> Result<Option<String>, String> {
    if key.is_ascii() && !key.bytes().any(|b| b.is_ascii_control()) {
        return Ok(None);
    }
    if let Some((at, c)) = key.char_indices().find(|&(_, c)| invisible(c)) {
        return Err(format!(
            "contains {} {}, which cannot be seen: retype the value without it \
             (a key that looks the same as another must be the same)",
            name(c),
            place(key, at)
        ));
    }
    Ok(mixed_scripts(key))
}

/// Checks any other text cell: `Err` for a character that reorders the display. `secret`:
/// the message names the character but shows none of the text.
pub fn check_text(text: &str, secret: bool) -> Result<(), String> {
    if text.is_ascii() {
        return Ok(());
    }
    match text.char_indices().find(|&(_, c)| reorders(c)) {
        Some((at, c)) => Err(format!(
            "contains {}{}, which changes how the text is displayed: remove it",
            name(c),
            if secret {
                String::new()
            } else {
                format!(" {}", place(text, at))
            }
        )),
        None => Ok(()),
    }
}

/// A warning when the letters of `key` come from scripts that share look-alike letters
/// (Latin, Greek, Cyrillic), mixed: `pаul` with a Cyrillic `а` is another account than `paul`.
fn mixed_scripts(key: &str) -> Option<String> {
    let mut first: Option<(Script, char)> = None;
    for c in key.chars().filter(|c| c.is_alphabetic()) {
        let s = c.script();
        if !matches!(s, Script::Latin | Script::Greek | Script::Cyrillic) {
            continue;
        }
        match first {
            None => first = Some((s, c)),
            Some((f, fc)) if f != s => {
                return Some(format!(
                    "mixes {} and {} letters ({fc:?} is {}, {c:?} is {}): letters that look \
                     alike are different characters; check that the key was typed, not pasted",
                    f.full_name(),
                    s.full_name(),
                    f.full_name(),
                    s.full_name()
                ))
            }
            Some(_) => {}
        }
    }
    None
}

/// Why `text` is not an email address under `rule`, in words that say what to write
/// instead; `None` when it is one.
///
/// Strict (the default) takes what every mail server takes: an RFC 5322 dot-atom of ASCII
/// before the `@`, and a dotted domain of letter-digit-dash labels after it, ending in a
/// top-level part of 2+ letters (or an IDN one written as punycode, `xn--p1ai`). Permissive
/// is SMTPUTF8 (RFC 6531): UTF-8 letters before the `@` and an international domain, which
/// is held to the same rules once converted to punycode. Quoted local parts and IP-address
/// domains are refused by both: they are valid in RFC 5322 and refused by most user APIs.
pub fn email_problem(text: &str, rule: EmailRule) -> Option<String> {
    let permissive = rule == EmailRule::Permissive;
    let Some((local, domain)) = text.rsplit_once('@') else {
        return Some("it has no @: write it as name@example.com".into());
    };
    if local.is_empty() {
        return Some("it has nothing before the @: write it as name@example.com".into());
    }
    if domain.is_empty() {
        return Some("it has no domain after the @: write it as name@example.com".into());
    }
    if local.contains('@') {
        return Some("it has more than one @".into());
    }
    if let Some(why) = local_problem(local, permissive) {
        return Some(why);
    }
    domain_problem(domain, permissive)
}

/// RFC 5322 `atext` in ASCII: what a dot-atom may hold besides dots.
fn atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c)
}

fn local_problem(local: &str, permissive: bool) -> Option<String> {
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Some(
            "the part before the @ may not begin or end with a dot, nor hold two dots in a row"
                .into(),
        );
    }
    if local.len() > 64 && local.chars().count() > 64 {
        return Some("the part before the @ is longer than 64 characters".into());
    }
    let bad = local.chars().find(|&c| {
        !(atext(c)
            || c == '.'
            || (permissive
                && !c.is_ascii()
                && !c.is_whitespace()
                && !c.is_control()
                && !invisible(c)))
    })?;
    Some(
        if !bad.is_ascii() && !invisible(bad) && !bad.is_whitespace() {
            format!(
            "the part before the @ holds {bad:?}, which is not ASCII and which most mail              servers refuse: write it in ASCII letters (the profile's email = \"permissive\" \
             accepts it for a target that takes SMTPUTF8 addresses)"
        )
        } else if bad == '"' {
            "the part before the @ is quoted: write the address without quotes".into()
        } else {
            format!(
                "the part before the @ holds {}, which an address may not hold: use letters, \
             digits, dots and !#$%&'*+/=?^_`{{|}}~-",
                char_name(bad)
            )
        },
    )
}

/// A character as a person can find it: `' '` for a space, `U+00A0 NO-BREAK SPACE`.
fn char_name(c: char) -> String {
    if c == ' ' {
        "a space".into()
    } else if invisible(c) {
        name(c)
    } else {
        format!("{c:?}")
    }
}

fn domain_problem(domain: &str, permissive: bool) -> Option<String> {
    if domain.starts_with('[') {
        return Some(
            "it has an IP address for a domain: write a domain name, as example.com".into(),
        );
    }
    let ascii: std::borrow::Cow<'_, str> = if domain.is_ascii() {
        domain.into()
    } else {
        let puny = match url::Host::parse(domain) {
            Ok(url::Host::Domain(d)) => d,
            _ => {
                return Some(format!(
                    "the domain {domain:?} is not a domain name: write it as example.com"
                ))
            }
        };
        if !permissive {
            return Some(format!(
                "the domain {domain:?} is not ASCII: write it as punycode, {puny:?} (the \
                 profile's email = \"permissive\" accepts it as written)"
            ));
        }
        puny.into()
    };
    if ascii.len() > 253 {
        return Some("the domain is longer than 253 characters".into());
    }
    // Checked for every row of a sheet: no allocation for an ASCII domain.
    let Some((_, tld)) = ascii.rsplit_once('.') else {
        return Some(format!(
            "the domain {domain:?} has no dot: write the whole domain, like example.com"
        ));
    };
    for label in ascii.split('.') {
        if label.is_empty() {
            return Some(
                "the domain may not begin or end with a dot, nor hold two dots in a row".into(),
            );
        }
        if label.len() > 63 {
            return Some("a part of the domain is longer than 63 characters".into());
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Some(format!(
                "the domain holds {}, which a domain name may not hold: use letters, digits, \
                 dashes and dots",
                char_name(c)
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some("a part of the domain may not begin or end with a dash".into());
        }
    }
    let punycode = tld.len() > 4 && tld[..4].eq_ignore_ascii_case("xn--");
    if !(punycode || (tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()))) {
        return Some("the domain needs a top-level part of 2+ letters, like example.com".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_named_table_is_sorted_for_its_binary_search() {
        assert!(NAMED.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn keys_that_look_alike_are_one_form_or_refused() {
        // Decomposed é (e + U+0301) and composed é are one key.
        assert_eq!(key_form("jose\u{301}@x.org"), "jos\u{e9}@x.org");
        assert_eq!(key_form("\u{a0} smith \u{3000}"), "smith");
        assert!(matches!(key_form("smith"), std::borrow::Cow::Borrowed(_)));
        for (key, char_name) in [
            ("smi\u{200B}th", "U+200B ZERO WIDTH SPACE after \"smi\""),
            (
                "\u{FEFF}smith",
                "U+FEFF ZERO WIDTH NO-BREAK SPACE (BOM) at the start",
            ),
            ("smi\u{AD}th", "U+00AD SOFT HYPHEN"),
            ("john\u{A0}smith", "U+00A0 NO-BREAK SPACE"),
            ("ann\u{202E}moc.evil", "U+202E RIGHT-TO-LEFT OVERRIDE"),
            ("a\tb", "U+0009 (a control character)"),
        ] {
            let e = check_key(key).expect_err(key);
            assert!(e.contains(char_name), "{key:?}: {e}");
        }
        assert_eq!(check_key("smith@example.com"), Ok(None));
        assert_eq!(check_key("jos\u{e9}"), Ok(None));
        assert_eq!(check_key("\u{41b}\u{435}\u{43d}\u{430}"), Ok(None)); // Лена
        let w = check_key("p\u{430}ul").expect("a warning, not a refusal");
        assert!(w.expect("warning").contains("Latin and Cyrillic"));
    }

    #[test]
    fn no_cell_sends_a_display_override() {
        assert!(check_text("\u{5e9}\u{5dc}\u{5d5}\u{5dd}", false).is_ok()); // Hebrew as typed
        assert!(check_text("Zo\u{eb}", false).is_ok());
        let e = check_text("invoice\u{202E}fdp.exe", false).unwrap_err();
        assert!(
            e.contains("RIGHT-TO-LEFT OVERRIDE after \"invoice\""),
            "{e}"
        );
        let e = check_text("pass\u{202E}word", true).unwrap_err();
        assert!(
            e.contains("RIGHT-TO-LEFT OVERRIDE,") && !e.contains("pass"),
            "{e}"
        );
    }
    #[test]
    fn strict_email_takes_what_every_server_takes() {
        let strict = |t: &str| email_problem(t, EmailRule::Strict);
        for ok in [
            "a@b.co",
            "john.smith+tag@mail.acme-corp.example",
            "o'neil@x.org",
            "x@xn--exmple-cua.com",
            "x@example.xn--p1ai",
            "A_B@EXAMPLE.COM",
        ] {
            assert_eq!(strict(ok), None, "{ok}");
        }
        for (bad, says) in [
            ("x@ex\u{e4}mple.com", "punycode, \"xn--exmple-cua.com\""),
            (
                "x@example.c",
                "top-level part of 2+ letters, like example.com",
            ),
            ("x@example.123", "top-level part of 2+ letters"),
            ("z\u{f6}e@example.com", "holds '\u{f6}', which is not ASCII"),
            ("a@b", "has no dot"),
            ("a..b@c.de", "two dots in a row"),
            (".a@b.de", "begin or end with a dot"),
            ("a@-b.de", "begin or end with a dash"),
            ("a@b_c.de", "holds '_'"),
            ("a b@c.de", "holds a space"),
            ("@b.de", "nothing before the @"),
            ("a@", "no domain after the @"),
            ("ab.de", "has no @"),
            ("a@@b.de", "more than one @"),
            ("\"q\"@b.de", "quoted"),
            ("a@b..de", "two dots in a row"),
            ("a@[10.0.0.1]", "IP address"),
            ("a\u{200b}b@c.de", "U+200B ZERO WIDTH SPACE"),
        ] {
            let why = strict(bad).unwrap_or_else(|| panic!("{bad} was taken"));
            assert!(why.contains(says), "{bad}: {why}");
        }
    }

    #[test]
    fn permissive_email_takes_utf8_but_no_more() {
        let permissive = |t: &str| email_problem(t, EmailRule::Permissive);
        for ok in ["z\u{f6}e@ex\u{e4}mple.com", "\u{43b}\u{435}\u{43d}\u{430}@\u{43f}\u{440}\u{438}\u{43c}\u{435}\u{440}.\u{440}\u{444}", "a@b.co"] {
            assert_eq!(permissive(ok), None, "{ok}");
        }
        for bad in [
            "x@example.c",
            "a b@c.de",
            "a\u{200b}b@c.de",
            "a@b",
            "a..b@c.de",
        ] {
            assert!(permissive(bad).is_some(), "{bad}");
        }
    }
}
