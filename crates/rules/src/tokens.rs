//! A token stream over a model's raw text: words, numbers, punctuation, operators, string
//! literals, quoted identifiers and Jinja tags, each with its byte range and its
//! parenthesis depth.
//!
//! The structural rules (a missing comma, a missing `GROUP BY` column, a function call
//! to rewrite) reason about *where* a token sits — in which select list, at which depth,
//! next to what — without needing a full SQL grammar. Built on [`crate::segment`], so a
//! string, a comment or a Jinja tag is never split into SQL tokens: a Jinja expression is
//! one opaque token (it renders to *something* in that place), a Jinja statement or
//! comment is one [`TokenKind::JinjaStatement`] token that structural scans skip, and SQL
//! comments produce no token at all. A string literal or quoted identifier that Jinja
//! interrupts (`'{{ var("x") }}'`) is one token spanning the whole literal.

use std::ops::Range;

use crate::segment::{is_ident_byte, segment, Segment, SegmentKind};

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// An unquoted identifier or keyword: `select`, `order_date`, `o`.
    Word,
    /// A numeric literal: `42`, `100.0`, `1e3`.
    Number,
    /// A delimited identifier, quotes included: `"Order Date"`.
    QuotedIdent,
    /// A string literal, quotes included: `'completed'`, `$$x$$`.
    StringLit,
    /// One of `(` `)` `,` `.` `;` `[` `]`.
    Punct,
    /// A run of operator characters: `=`, `::`, `||`, `//`, `>=`, `*`.
    Operator,
    /// A Jinja expression `{{ … }}`: renders to some SQL in this place.
    Jinja,
    /// A Jinja statement, comment or raw block: control flow, not SQL.
    JinjaStatement,
}

/// One token of the model text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// What it is.
    pub kind: TokenKind,
    /// Its bytes in the model text.
    pub range: Range<usize>,
    /// How many parentheses (and brackets) are open around it. An opening parenthesis
    /// has the depth outside it; its closing partner the same.
    pub depth: usize,
}

impl Token {
    /// The token's text.
    pub fn text<'t>(&self, source: &'t str) -> &'t str {
        &source[self.range.clone()]
    }

    /// True for a word equal to `keyword`, ignoring ASCII case.
    pub fn is_keyword(&self, source: &str, keyword: &str) -> bool {
        self.kind == TokenKind::Word && self.text(source).eq_ignore_ascii_case(keyword)
    }

    /// True for the punctuation character `c`.
    pub fn is_punct(&self, source: &str, c: char) -> bool {
        self.kind == TokenKind::Punct && self.text(source).starts_with(c)
    }

    /// A name token's text without its quotes (`"Order Id"` → `Order Id`); any other
    /// token's text as it is.
    pub fn unquoted<'t>(&self, source: &'t str) -> &'t str {
        let text = self.text(source);
        if self.kind == TokenKind::QuotedIdent {
            text.get(1..text.len().saturating_sub(1)).unwrap_or(text)
        } else {
            text
        }
    }
}

/// The tokens of `text`, in order. Never fails: text it cannot classify becomes an
/// operator token, so the stream always covers every non-blank, non-comment byte.
pub fn tokenize(text: &str) -> Vec<Token> {
    let segments = segment(text);
    tokenize_segments(text, &segments)
}

/// [`tokenize`] for text that was already segmented.
pub fn tokenize_segments(text: &str, segments: &[Segment]) -> Vec<Token> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut depth = 0usize;
    let mut index = 0;
    while index < segments.len() {
        let seg = &segments[index];
        match seg.kind {
            SegmentKind::Code => lex_code(bytes, seg.range.clone(), &mut depth, &mut tokens),
            SegmentKind::Comment => {}
            SegmentKind::JinjaExpression => tokens.push(Token {
                kind: TokenKind::Jinja,
                range: seg.range.clone(),
                depth,
            }),
            SegmentKind::JinjaStatement | SegmentKind::JinjaComment | SegmentKind::JinjaRaw => {
                tokens.push(Token {
                    kind: TokenKind::JinjaStatement,
                    range: seg.range.clone(),
                    depth,
                })
            }
            SegmentKind::StringLiteral | SegmentKind::QuotedIdentifier => {
                let kind = if seg.kind == SegmentKind::StringLiteral {
                    TokenKind::StringLit
                } else {
                    TokenKind::QuotedIdent
                };
                // A literal interrupted by Jinja is several segments: the opening piece,
                // the Jinja, the rest. Join them into one token.
                let start = seg.range.start;
                let mut end = seg.range.end;
                let first = &text[seg.range.clone()];
                let quote = first.chars().next().unwrap_or('\'');
                let mut open = quote != '$' && quote_count_is_odd(first, quote);
                while open {
                    let mut next = index + 1;
                    while segments.get(next).is_some_and(|s| s.kind.is_jinja()) {
                        next += 1;
                    }
                    match segments.get(next) {
                        Some(s) if s.kind == seg.kind && next > index + 1 => {
                            end = s.range.end;
                            // The closing piece has an odd number of quotes.
                            open = !quote_count_is_odd(&text[s.range.clone()], quote);
                            index = next;
                        }
                        _ => break,
                    }
                }
                tokens.push(Token {
                    kind,
                    range: start..end,
                    depth,
                });
            }
        }
        index += 1;
    }
    tokens
}

/// True when `piece` has an odd number of `quote` characters: an opening piece that
/// does not close what it opens, or a continuation piece that closes it (`''` escapes
/// come in pairs). Dollar-quoted strings are never joined.
fn quote_count_is_odd(piece: &str, quote: char) -> bool {
    piece.chars().filter(|&c| c == quote).count() % 2 == 1
}

const OPERATOR_BYTES: &[u8] = b"+-*/%<>=!|&^~:?@#";

fn lex_code(bytes: &[u8], range: Range<usize>, depth: &mut usize, out: &mut Vec<Token>) {
    let mut i = range.start;
    let end = range.end;
    while i < end {
        let b = bytes[i];
        if b.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let kind = if b.is_ascii_digit() {
            // Digits, a fraction, an exponent: `1`, `100.0`, `1e-3`.
            while i < end && is_ident_byte(bytes[i]) {
                i += 1;
            }
            if i + 1 < end && bytes[i] == b'.' && bytes[i + 1].is_ascii_digit() {
                i += 1;
                while i < end && is_ident_byte(bytes[i]) {
                    i += 1;
                }
            }
            TokenKind::Number
        } else if b == b'.'
            && i + 1 < end
            && bytes[i + 1].is_ascii_digit()
            && !prev_is_name(out, start)
        {
            // `.5`
            i += 1;
            while i < end && is_ident_byte(bytes[i]) {
                i += 1;
            }
            TokenKind::Number
        } else if is_ident_byte(b) {
            while i < end && is_ident_byte(bytes[i]) {
                i += 1;
            }
            TokenKind::Word
        } else if matches!(b, b'(' | b')' | b',' | b'.' | b';' | b'[' | b']') {
            i += 1;
            TokenKind::Punct
        } else if OPERATOR_BYTES.contains(&b) {
            while i < end && OPERATOR_BYTES.contains(&bytes[i]) {
                i += 1;
            }
            TokenKind::Operator
        } else {
            // Anything else (`{`, `}`, a stray byte): one operator-like token.
            i += 1;
            TokenKind::Operator
        };
        let token_depth = match (kind, b) {
            (TokenKind::Punct, b'(' | b'[') => {
                let d = *depth;
                *depth += 1;
                d
            }
            (TokenKind::Punct, b')' | b']') => {
                *depth = depth.saturating_sub(1);
                *depth
            }
            _ => *depth,
        };
        out.push(Token {
            kind,
            range: start..i,
            depth: token_depth,
        });
    }
}

/// True when the token just before `at` is a name glued to it (`t.5` is not a number).
fn prev_is_name(out: &[Token], at: usize) -> bool {
    out.last().is_some_and(|t| {
        t.range.end == at && matches!(t.kind, TokenKind::Word | TokenKind::QuotedIdent)
    })
}

/// True when something other than nothing separates two adjacent tokens: whitespace or
/// a comment. `a b` is separated; `a.b` and `{{ x }}_y` are not.
pub fn separated(tokens: &[Token], index: usize) -> bool {
    index > 0 && tokens[index - 1].range.end < tokens[index].range.start
}

/// Index of the token that closes the parenthesis or bracket opened at `open`, if any.
pub fn matching_close(tokens: &[Token], source: &str, open: usize) -> Option<usize> {
    let opener = tokens.get(open)?;
    if !(opener.is_punct(source, '(') || opener.is_punct(source, '[')) {
        return None;
    }
    let depth = opener.depth;
    tokens
        .iter()
        .enumerate()
        .skip(open + 1)
        .find(|(_, t)| {
            t.depth == depth && t.kind == TokenKind::Punct && matches!(t.text(source), ")" | "]")
        })
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> Vec<(TokenKind, &str, usize)> {
        tokenize(text)
            .iter()
            .map(|t| (t.kind, t.text(text), t.depth))
            .collect()
    }

    use TokenKind::*;

    #[test]
    fn words_numbers_punctuation_and_depth() {
        assert_eq!(
            texts("select count(*) n, 1.5::int from t"),
            vec![
                (Word, "select", 0),
                (Word, "count", 0),
                (Punct, "(", 0),
                (Operator, "*", 1),
                (Punct, ")", 0),
                (Word, "n", 0),
                (Punct, ",", 0),
                (Number, "1.5", 0),
                (Operator, "::", 0),
                (Word, "int", 0),
                (Word, "from", 0),
                (Word, "t", 0),
            ]
        );
    }

    #[test]
    fn comments_vanish_and_jinja_is_opaque() {
        assert_eq!(
            texts("select a -- b\n, {{ ref('x') }} /* c */ {% if y %}"),
            vec![
                (Word, "select", 0),
                (Word, "a", 0),
                (Punct, ",", 0),
                (Jinja, "{{ ref('x') }}", 0),
                (JinjaStatement, "{% if y %}", 0),
            ]
        );
    }

    #[test]
    fn literals_interrupted_by_jinja_are_one_token() {
        assert_eq!(
            texts("where c = '{{ var(\"x\") }}-{{ y }}' and \"{{ p }}_col\" = 'it''s'"),
            vec![
                (Word, "where", 0),
                (Word, "c", 0),
                (Operator, "=", 0),
                (StringLit, "'{{ var(\"x\") }}-{{ y }}'", 0),
                (Word, "and", 0),
                (QuotedIdent, "\"{{ p }}_col\"", 0),
                (Operator, "=", 0),
                (StringLit, "'it''s'", 0),
            ]
        );
    }

    #[test]
    fn qualified_names_and_separation() {
        let text = "o.order_id {{ p }}_x";
        let tokens = tokenize(text);
        assert_eq!(tokens.len(), 5);
        assert!(!separated(&tokens, 1));
        assert!(separated(&tokens, 3));
        assert!(!separated(&tokens, 4));
    }

    #[test]
    fn matching_parentheses() {
        let text = "f(a, (b), c) d";
        let tokens = tokenize(text);
        assert_eq!(matching_close(&tokens, text, 1), Some(9));
        assert_eq!(tokens[9].text(text), ")");
        assert_eq!(matching_close(&tokens, text, 0), None);
    }
}
