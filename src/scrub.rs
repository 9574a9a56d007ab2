//! Secrets out of server text.
//!
//! A server's error body may echo the request (a password in a body, a token in a header),
//! and that text becomes a row's message, a log line or a login error. Every such text
//! passes a [`Scrubber`] first, which replaces each secret value known to the run with
//! [`MASK`]: as sent, and in the forms an echo takes (JSON-escaped, percent-encoded,
//! whitespace collapsed, base64 as in a Basic header).

use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine as _;

pub use crate::plan::MASK;

/// Marks where a message was cut short (see [`crate::execute::client::failure_message`]):
/// the text just before it may be the start of a secret, and is masked as well.
pub const CUT: char = '…';

/// The secret values a run knows: its credentials, and every token a login obtained.
/// Server text passes this run's [`Scrubber`] before it is stored or printed.
#[derive(Default)]
pub struct Known {
    /// Replaced (never changed in place) when a login adds a token: a reader keeps the
    /// snapshot it took. Held only to clone or swap the `Arc`.
    scrubber: std::sync::RwLock<Arc<Scrubber>>,
}

impl Known {
    /// The scrubber as of now.
    pub fn get(&self) -> Arc<Scrubber> {
        self.scrubber
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn add(&self, secret: &str) {
        let mut s = self.scrubber.write().unwrap_or_else(|p| p.into_inner());
        let mut next = (**s).clone();
        next.add(secret);
        *s = Arc::new(next);
    }

    /// An auth header's value, and its credential alone (after `Basic `, `Bearer `...).
    pub(crate) fn add_header(&self, value: &reqwest::header::HeaderValue) {
        if let Ok(v) = value.to_str() {
            self.add(v);
            if let Some((_, cred)) = v.split_once(' ') {
                self.add(cred.trim());
            }
        }
    }
}

/// The secret values to take out of text, each in the forms an echo may take.
#[derive(Clone, Default)]
pub struct Scrubber {
    /// Longest first, so that a secret holding another is masked whole.
    needles: Vec<String>,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scrubber({} forms)", self.needles.len())
    }
}

impl Scrubber {
    /// A scrubber for `secrets`.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Scrubber {
        let mut s = Scrubber::default();
        for v in secrets {
            s.add(v);
        }
        s
    }

    /// Adds a secret value (and its echoed forms). Empty values are ignored.
    pub fn add(&mut self, secret: &str) {
        for form in forms(secret) {
            if !self.needles.contains(&form) {
                self.needles.push(form);
            }
        }
        self.needles
            .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    }

    /// This scrubber with more secrets (a row's secret cells).
    pub fn with<'a>(&self, more: impl IntoIterator<Item = &'a str>) -> Cow<'_, Scrubber> {
        let mut more = more.into_iter().filter(|v| !v.trim().is_empty()).peekable();
        if more.peek().is_none() {
            return Cow::Borrowed(self);
        }
        let mut s = self.clone();
        for v in more {
            s.add(v);
        }
        Cow::Owned(s)
    }

    /// `text` with every known secret replaced by [`MASK`]; a secret's beginning just
    /// before a [`CUT`] is masked too.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        if self.needles.is_empty() {
            return out;
        }
        for n in &self.needles {
            if out.contains(n.as_str()) {
                out = out.replace(n.as_str(), MASK);
            }
        }
        if out.contains(CUT) {
            out = self.mask_cut_prefixes(&out);
        }
        out
    }

    /// At each [`CUT`], the longest beginning of a secret that the text before it ends
    /// with becomes [`MASK`].
    fn mask_cut_prefixes(&self, text: &str) -> String {
        let pieces: Vec<&str> = text.split(CUT).collect();
        let mut out = String::with_capacity(text.len() + MASK.len());
        for (i, piece) in pieces.iter().enumerate() {
            if i > 0 {
                out.push(CUT);
            }
            // The last piece was not cut short.
            let cut = i + 1 < pieces.len();
            let masked = self
                .needles
                .iter()
                .filter_map(|n| {
                    (1..n.len())
                        .rev()
                        .filter(|&l| n.is_char_boundary(l))
                        .find(|&l| piece.ends_with(&n[..l]))
                })
                .max()
                .filter(|_| cut);
            match masked {
                Some(len) => {
                    out.push_str(&piece[..piece.len() - len]);
                    out.push_str(MASK);
                }
                None => out.push_str(piece),
            }
        }
        out
    }
}

/// A secret as sent and as an echo may show it.
fn forms(secret: &str) -> Vec<String> {
    if secret.trim().is_empty() {
        return Vec::new();
    }
    let mut v = vec![secret.to_string()];
    let mut push = |s: String| {
        if !s.is_empty() && !v.contains(&s) {
            v.push(s);
        }
    };
    // Inside a JSON string.
    if let Ok(j) = serde_json::to_string(secret) {
        push(j[1..j.len() - 1].to_string());
    }
    // In a URL or a form.
    let pct = percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    push(pct.replace("%20", "+"));
    push(pct);
    // After whitespace was collapsed (as a message excerpt does).
    push(secret.split_whitespace().collect::<Vec<_>>().join(" "));
    // As base64 (a Basic header echoed, or the secret alone encoded).
    push(base64::engine::general_purpose::STANDARD.encode(secret));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_masks_every_form_of_a_secret() {
        let s = Scrubber::new(["S3cr3t \"pw\"/x", "tok123"]);
        let echoes = [
            r#"{"password":"S3cr3t \"pw\"/x"}"#,
            "password=S3cr3t+%22pw%22%2Fx",
            "password=S3cr3t%20%22pw%22%2Fx",
            "Authorization: Bearer tok123",
            "raw S3cr3t \"pw\"/x end",
        ];
        for e in echoes {
            let out = s.scrub(e);
            assert!(!out.contains("S3cr3t") && !out.contains("tok123"), "{out}");
            assert!(out.contains(MASK), "{out}");
        }
        let b64 = base64::engine::general_purpose::STANDARD.encode("tok123");
        assert_eq!(s.scrub(&format!("x {b64} y")), format!("x {MASK} y"));
        assert_eq!(s.scrub("nothing here"), "nothing here");
    }

    #[test]
    fn scrub_masks_a_secret_cut_short() {
        let s = Scrubber::new(["hunter2-long-password"]);
        assert_eq!(
            s.scrub("400 Bad Request: {\"password\":\"hunter2-lo…"),
            format!("400 Bad Request: {{\"password\":\"{MASK}…")
        );
        // Only before a cut: a message that ends naturally keeps its last word.
        assert_eq!(s.scrub("ends with hunter"), "ends with hunter");
        assert_eq!(s.scrub("h…"), format!("{MASK}…"));
    }

    #[test]
    fn scrub_with_row_secrets() {
        let run = Scrubber::new(["adminpw"]);
        let row = run.with(["userpw1", ""]);
        assert_eq!(row.scrub("adminpw userpw1"), format!("{MASK} {MASK}"));
        assert!(matches!(run.with([""]), Cow::Borrowed(_)));
        assert_eq!(Scrubber::default().scrub("a…"), "a…");
        assert!(!format!("{run:?}").contains("adminpw"));
    }
}
