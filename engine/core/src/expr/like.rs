//! SQL `LIKE` patterns as Milvus reads them: `%` matches any run of characters, `_` exactly one
//! character, and `\` makes the next character literal. Patterns are classified once at compile
//! time so the common forms (`"ab"`, `"ab%"`, `"%ab"`, `"%ab%"`) run as plain string operations.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Char(char),
    One,
    Many,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LikePattern {
    /// No wildcard: equality.
    Exact(Box<str>),
    Prefix(Box<str>),
    Suffix(Box<str>),
    Contains(Box<str>),
    PrefixSuffix(Box<str>, Box<str>),
    /// Only `%`s: every string matches.
    Any,
    General(Box<[GTok]>),
}

/// Token of a general pattern.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum GTok {
    Lit(Box<str>),
    One,
    Many,
}

impl LikePattern {
    pub(crate) fn new(pattern: &str) -> LikePattern {
        let mut toks = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => toks.push(Tok::Char(chars.next().unwrap_or('\\'))),
                '%' => {
                    if toks.last() != Some(&Tok::Many) {
                        toks.push(Tok::Many)
                    }
                }
                '_' => toks.push(Tok::One),
                c => toks.push(Tok::Char(c)),
            }
        }
        // Group literal runs.
        let mut g: Vec<GTok> = Vec::new();
        let mut lit = String::new();
        for t in toks {
            match t {
                Tok::Char(c) => lit.push(c),
                other => {
                    if !lit.is_empty() {
                        g.push(GTok::Lit(std::mem::take(&mut lit).into()));
                    }
                    g.push(if other == Tok::One {
                        GTok::One
                    } else {
                        GTok::Many
                    });
                }
            }
        }
        if !lit.is_empty() {
            g.push(GTok::Lit(lit.into()));
        }
        use GTok::*;
        match g.as_slice() {
            [] => LikePattern::Exact("".into()),
            [Lit(s)] => LikePattern::Exact(s.clone()),
            [Many] => LikePattern::Any,
            [Lit(s), Many] => LikePattern::Prefix(s.clone()),
            [Many, Lit(s)] => LikePattern::Suffix(s.clone()),
            [Many, Lit(s), Many] => LikePattern::Contains(s.clone()),
            [Lit(p), Many, Lit(s)] => LikePattern::PrefixSuffix(p.clone(), s.clone()),
            _ => LikePattern::General(g.into()),
        }
    }

    #[inline]
    pub(crate) fn matches(&self, text: &str) -> bool {
        match self {
            LikePattern::Exact(s) => text == &**s,
            LikePattern::Prefix(s) => text.starts_with(&**s),
            LikePattern::Suffix(s) => text.ends_with(&**s),
            LikePattern::Contains(s) => contains(text, s),
            LikePattern::PrefixSuffix(p, s) => {
                text.len() >= p.len() + s.len() && text.starts_with(&**p) && text.ends_with(&**s)
            }
            LikePattern::Any => true,
            LikePattern::General(toks) => glob(toks, text),
        }
    }
}

/// Substring test. Short needles scan for their first byte and compare in place (at most
/// 8 bytes per candidate, so linear), which beats `str::contains`' searcher setup on the short
/// values filters usually see; longer needles use the standard two-way search.
#[inline]
fn contains(text: &str, needle: &str) -> bool {
    let (h, n) = (text.as_bytes(), needle.as_bytes());
    if n.len() > 8 {
        return text.contains(needle);
    }
    let Some((&first, _)) = n.split_first() else {
        return true;
    };
    if h.len() < n.len() {
        return false;
    }
    let last = h.len() - n.len();
    let mut i = 0;
    while i <= last {
        match h[i..=last].iter().position(|&b| b == first) {
            None => return false,
            Some(p) => {
                i += p;
                if &h[i..i + n.len()] == n {
                    return true;
                }
                i += 1;
            }
        }
    }
    false
}

/// Wildcard match with single-star backtracking (linear for most patterns, O(n·m) worst case).
fn glob(toks: &[GTok], text: &str) -> bool {
    let (mut pi, mut ti) = (0usize, 0usize);
    // (token index after the last '%', text position it was tried at)
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < toks.len() {
            match &toks[pi] {
                GTok::Many => {
                    star = Some((pi + 1, ti));
                    pi += 1;
                    continue;
                }
                GTok::One => {
                    if let Some(c) = text[ti..].chars().next() {
                        ti += c.len_utf8();
                        pi += 1;
                        continue;
                    }
                }
                GTok::Lit(s) => {
                    if text[ti..].starts_with(&**s) {
                        ti += s.len();
                        pi += 1;
                        continue;
                    }
                }
            }
        } else if ti == text.len() {
            return true;
        }
        // Mismatch (or pattern exhausted before the text): let the last '%' absorb one more char.
        match star {
            Some((sp, st)) => match text[st..].chars().next() {
                Some(c) => {
                    let nt = st + c.len_utf8();
                    star = Some((sp, nt));
                    pi = sp;
                    ti = nt;
                }
                None => return false,
            },
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        LikePattern::new(p).matches(t)
    }

    #[test]
    fn classification() {
        assert_eq!(LikePattern::new("ab%"), LikePattern::Prefix("ab".into()));
        assert_eq!(LikePattern::new("%ab"), LikePattern::Suffix("ab".into()));
        assert_eq!(LikePattern::new("%ab%"), LikePattern::Contains("ab".into()));
        assert_eq!(
            LikePattern::new("%%ab%%%"),
            LikePattern::Contains("ab".into())
        );
        assert_eq!(LikePattern::new("ab"), LikePattern::Exact("ab".into()));
        assert_eq!(LikePattern::new("%"), LikePattern::Any);
        assert_eq!(
            LikePattern::new("a%b"),
            LikePattern::PrefixSuffix("a".into(), "b".into())
        );
        assert_eq!(LikePattern::new(r"a\%"), LikePattern::Exact("a%".into()));
        assert_eq!(LikePattern::new(r"a\%%"), LikePattern::Prefix("a%".into()));
        assert!(matches!(LikePattern::new("a_b"), LikePattern::General(_)));
    }

    #[test]
    fn matching() {
        assert!(m("ab%", "abc") && m("ab%", "ab") && !m("ab%", "xab"));
        assert!(m("%ab", "xab") && !m("%ab", "abx"));
        assert!(m("%ab%", "xaby") && !m("%ab%", "ba"));
        assert!(
            m("%ab%", "ab")
                && m("%ab%", "aab")
                && !m("%ab%", "a")
                && !m("%ab%", "")
                && m("%é%", "café")
        );
        assert!(m("%abcdefghij%", "xxabcdefghijxx") && !m("%abcdefghij%", "abcdefghi"));
        assert!(m("a%b", "ab") && m("a%b", "axxb") && !m("a%b", "a") && !m("ab%ba", "aba"));
        assert!(m("a_c", "abc") && m("a_c", "aéc") && !m("a_c", "ac") && !m("a_c", "abbc"));
        assert!(m("%a_c%", "xxabcxx") && m("_%_", "ab") && !m("_%_", "a"));
        assert!(m("a%b%c", "aXbYc") && m("a%b%c", "abbc") && !m("a%b%c", "acb"));
        assert!(m("%", "") && m("", "") && !m("", "a") && !m("_", ""));
        // regex metacharacters are literal
        assert!(m("a.c%", "a.cd") && !m("a.c%", "abcd"));
        assert!(m("%(x)*[y]%", "q(x)*[y]q") && !m("%(x)*[y]%", "xxy"));
        assert!(m("^$|+?{}", "^$|+?{}"));
        assert!(m(r"50\%", "50%") && !m(r"50\%", "500"));
        assert!(m(r"a\_c", "a_c") && !m(r"a\_c", "abc"));
        assert!(m(r"a\\%", r"a\bc"));
    }
}
