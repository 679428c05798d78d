//! DARTS genotype strings, as the DARTS code prints and its `genotypes.py` writes them:
//!
//! ```text
//! Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ...], normal_concat=[2, 3, 4, 5],
//!          reduce=[('max_pool_3x3', 0), ...], reduce_concat=[2, 3, 4, 5])
//! ```
//!
//! Each cell lists, for nodes 2..=5 in turn, its two `(op, input)` pairs; inputs 0 and 1 are
//! the cell's inputs. Formatting writes each node's pairs in increasing input order (the DARTS
//! code writes them by edge strength, which an architecture does not keep), so formatting a
//! parsed genotype gives the same cells, possibly with a node's two pairs swapped.
//!
//! Parsing accepts single or double quotes, tuples or lists for the pairs, any whitespace and
//! line breaks, keyword arguments in any order, and `range(2, 6)` for the concatenation (as
//! `genotypes.py` writes it). Only genotypes of this space parse: 7 ops (no `none`), 8 pairs per
//! cell with two distinct inputs per node, and all four intermediate nodes concatenated.

use crate::space::{edge_index, operation_names, CellKind, CellOperations, DartsArchitecture, Operation, EDGES, EDGES_PER_CELL, NUM_NODES};

/// The genotype string of an architecture.
pub fn format(architecture: &DartsArchitecture) -> String {
    let cell = |operations: &CellOperations| {
        let pairs: Vec<String> =
            (0..EDGES_PER_CELL).filter_map(|edge| operations[edge].map(|op| format!("('{}', {})", op.name(), EDGES[edge].1))).collect();
        format!("[{}]", pairs.join(", "))
    };
    format!(
        "Genotype(normal={}, normal_concat=[2, 3, 4, 5], reduce={}, reduce_concat=[2, 3, 4, 5])",
        cell(&architecture.normal),
        cell(&architecture.reduce)
    )
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Number(i64),
    Symbol(char),
}

fn describe(token: Option<&Token>) -> String {
    match token {
        None => "the end of the text".to_string(),
        Some(Token::Word(word)) => format!("`{word}`"),
        Some(Token::Text(text)) => format!("'{text}'"),
        Some(Token::Number(number)) => format!("{number}"),
        Some(Token::Symbol(symbol)) => format!("`{symbol}`"),
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '\'' || c == '"' {
            chars.next();
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some(end) if end == c => break,
                    Some(other) => value.push(other),
                    None => return Err(format!("unterminated string starting {c}{value}")),
                }
            }
            tokens.push(Token::Text(value));
        } else if c.is_ascii_digit() || c == '-' {
            let mut value = String::new();
            value.push(c);
            chars.next();
            while let Some(&digit) = chars.peek().filter(|d| d.is_ascii_digit()) {
                value.push(digit);
                chars.next();
            }
            tokens.push(Token::Number(value.parse().map_err(|_| format!("`{value}` is not a number"))?));
        } else if c.is_alphabetic() || c == '_' {
            let mut value = String::new();
            while let Some(&letter) = chars.peek().filter(|l| l.is_alphanumeric() || **l == '_' || **l == '.') {
                value.push(letter);
                chars.next();
            }
            tokens.push(Token::Word(value));
        } else if "()[],=".contains(c) {
            tokens.push(Token::Symbol(c));
            chars.next();
        } else {
            return Err(format!("unexpected character `{c}`"));
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    position: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.position).cloned();
        self.position += 1;
        token
    }

    fn expect_symbol(&mut self, symbol: char, context: &str) -> Result<(), String> {
        match self.next() {
            Some(Token::Symbol(found)) if found == symbol => Ok(()),
            other => Err(format!("expected `{symbol}` {context}, found {}", describe(other.as_ref()))),
        }
    }

    fn eat_symbol(&mut self, symbol: char) -> bool {
        if self.peek() == Some(&Token::Symbol(symbol)) {
            self.position += 1;
            true
        } else {
            false
        }
    }

    /// `[ item, item, ... ]` or `( ... )`, with an optional trailing comma.
    fn sequence<T>(&mut self, context: &str, mut item: impl FnMut(&mut Self) -> Result<T, String>) -> Result<Vec<T>, String> {
        let close = match self.next() {
            Some(Token::Symbol('[')) => ']',
            Some(Token::Symbol('(')) => ')',
            other => return Err(format!("expected a list {context}, found {}", describe(other.as_ref()))),
        };
        let mut items = Vec::new();
        loop {
            if self.eat_symbol(close) {
                return Ok(items);
            }
            items.push(item(self)?);
            if !self.eat_symbol(',') {
                self.expect_symbol(close, context)?;
                return Ok(items);
            }
        }
    }

    fn number(&mut self, context: &str) -> Result<i64, String> {
        match self.next() {
            Some(Token::Number(number)) => Ok(number),
            other => Err(format!("expected a number {context}, found {}", describe(other.as_ref()))),
        }
    }

    /// `('sep_conv_3x3', 0)`
    fn pair(&mut self, cell: &str) -> Result<(String, i64), String> {
        let context = format!("in the {cell} cell");
        let items = self.sequence(&context, |parser| match parser.next() {
            Some(Token::Text(text)) => Ok(Token::Text(text)),
            Some(Token::Number(number)) => Ok(Token::Number(number)),
            other => Err(format!("expected an op name or an input {context}, found {}", describe(other.as_ref()))),
        })?;
        match items.as_slice() {
            [Token::Text(op), Token::Number(input)] => Ok((op.clone(), *input)),
            _ => Err(format!("every entry of the {cell} cell is a pair ('op', input), found {items:?}")),
        }
    }

    /// `[2, 3, 4, 5]` or `range(2, 6)`.
    fn concat(&mut self, key: &str) -> Result<Vec<i64>, String> {
        let context = format!("for {key}");
        if let Some(Token::Word(word)) = self.peek() {
            if word != "range" {
                return Err(format!("expected a list or range(2, 6) {context}, found `{word}`"));
            }
            self.position += 1;
            self.expect_symbol('(', &context)?;
            let start = self.number(&context)?;
            self.expect_symbol(',', &context)?;
            let end = self.number(&context)?;
            self.eat_symbol(',');
            self.expect_symbol(')', &context)?;
            return Ok((start..end).collect());
        }
        self.sequence(&context, |parser| parser.number(&context))
    }
}

fn cell_operations(kind: CellKind, pairs: &[(String, i64)]) -> Result<CellOperations, String> {
    let cell = kind.name();
    let expected = 2 * (NUM_NODES - 2);
    if pairs.len() != expected {
        return Err(format!("the {cell} cell lists {} (op, input) pairs, but a darts cell has {expected} (two per node 2..5)", pairs.len()));
    }
    let mut operations: CellOperations = [None; EDGES_PER_CELL];
    for (position, (op_name, input)) in pairs.iter().enumerate() {
        let node = 2 + position / 2;
        let op = Operation::from_name(op_name).ok_or_else(|| {
            let hint = if op_name == "none" { " (the darts space has no `none` op: every kept edge carries one)" } else { "" };
            format!("unknown op '{op_name}' for node {node} of the {cell} cell{hint}; the ops are {}", operation_names())
        })?;
        if *input < 0 || *input as usize >= node {
            return Err(format!("node {node} of the {cell} cell takes input {input}, but its inputs are 0..{}", node - 1));
        }
        let edge = edge_index(node, *input as usize).expect("input below node");
        if operations[edge].is_some() {
            return Err(format!("node {node} of the {cell} cell takes input {input} twice; the darts space has one op per edge"));
        }
        operations[edge] = Some(op);
    }
    Ok(operations)
}

/// Parses a genotype string.
pub fn parse(text: &str) -> Result<DartsArchitecture, String> {
    let mut parser = Parser { tokens: tokenize(text)?, position: 0 };
    match parser.next() {
        Some(Token::Word(word)) if word == "Genotype" || word.ends_with(".Genotype") => {}
        other => return Err(format!("a darts genotype starts with `Genotype(`, found {}", describe(other.as_ref()))),
    }
    parser.expect_symbol('(', "after Genotype")?;
    let mut cells: [Option<Vec<(String, i64)>>; 2] = [None, None];
    let mut concats: [Option<Vec<i64>>; 2] = [None, None];
    loop {
        if parser.eat_symbol(')') {
            break;
        }
        let key = match parser.next() {
            Some(Token::Word(word)) => word,
            other => return Err(format!("expected normal=, normal_concat=, reduce= or reduce_concat=, found {}", describe(other.as_ref()))),
        };
        parser.expect_symbol('=', &format!("after {key}"))?;
        let slot = match key.as_str() {
            "normal" | "normal_concat" => 0,
            "reduce" | "reduce_concat" => 1,
            _ => return Err(format!("unknown field `{key}`: a darts genotype has normal, normal_concat, reduce and reduce_concat")),
        };
        let cell = CellKind::ALL[slot].name();
        if key.ends_with("_concat") {
            if concats[slot].replace(parser.concat(&key)?).is_some() {
                return Err(format!("{key} is given twice"));
            }
        } else if cells[slot].replace(parser.sequence(&format!("for {key}"), |parser| parser.pair(cell))?).is_some() {
            return Err(format!("{key} is given twice"));
        }
        if !parser.eat_symbol(',') {
            parser.expect_symbol(')', "at the end of the genotype")?;
            break;
        }
    }
    if let Some(extra) = parser.peek() {
        return Err(format!("unexpected {} after the genotype", describe(Some(extra))));
    }
    let mut operations = Vec::new();
    for kind in CellKind::ALL {
        let slot = kind.offset() / EDGES_PER_CELL;
        let pairs = cells[slot].as_ref().ok_or_else(|| format!("the genotype has no `{}` cell", kind.name()))?;
        if let Some(concat) = &concats[slot] {
            if concat != &[2, 3, 4, 5] {
                return Err(format!(
                    "{}_concat is {concat:?}, but the darts space always concatenates the intermediate nodes [2, 3, 4, 5]",
                    kind.name()
                ));
            }
        }
        operations.push(cell_operations(kind, pairs)?);
    }
    Ok(DartsArchitecture { normal: operations[0], reduce: operations[1] })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const DARTS_V2: &str = "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])";

    #[test]
    fn darts_v2_parses_and_formats_in_input_order() {
        let architecture = parse(DARTS_V2).unwrap();
        assert_eq!(architecture.normal[edge_index(2, 0).unwrap()], Some(Operation::SepConv3x3));
        assert_eq!(architecture.normal[edge_index(5, 2).unwrap()], Some(Operation::DilConv3x3));
        assert_eq!(architecture.reduce[edge_index(3, 2).unwrap()], Some(Operation::SkipConnect));
        assert_eq!(architecture.normal.iter().filter(|op| op.is_some()).count(), 8);
        let formatted = format(&architecture);
        // Node 4 lists (sep_conv_3x3, 1), (skip_connect, 0) in DARTS_V2; formatting sorts by input.
        assert_eq!(
            formatted,
            "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('skip_connect', 2), ('max_pool_3x3', 1), ('skip_connect', 2)], reduce_concat=[2, 3, 4, 5])"
        );
        assert_eq!(parse(&formatted).unwrap(), architecture);
    }

    #[test]
    fn genotypes_py_spellings_parse() {
        let multi_line = r#"genotypes.Genotype(
            normal=[["sep_conv_3x3", 1], ["skip_connect", 0], ["sep_conv_3x3", 0], ["dil_conv_3x3", 1],
                    ["sep_conv_5x5", 0], ["sep_conv_3x3", 1], ["avg_pool_3x3", 0], ["dil_conv_3x3", 1],],
            normal_concat=range(2, 6),
            reduce_concat=range(2, 6),
            reduce=[('sep_conv_5x5', 1), ('max_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_5x5', 2),
                    ('sep_conv_3x3', 0), ('sep_conv_3x3', 3), ('sep_conv_3x3', 1), ('sep_conv_3x3', 2)],
        )"#;
        let architecture = parse(multi_line).unwrap();
        assert_eq!(architecture.reduce[edge_index(4, 3).unwrap()], Some(Operation::SepConv3x3));
        assert_eq!(parse(&format(&architecture)).unwrap(), architecture);
    }

    #[test]
    fn malformed_genotypes_say_what_is_wrong() {
        let error = |text: &str| parse(text).unwrap_err();
        assert!(error("").contains("starts with `Genotype(`"));
        assert!(error(&DARTS_V2.replace("('dil_conv_3x3', 2)", "('none', 2)")).contains("no `none` op"));
        assert!(error(&DARTS_V2.replace("('dil_conv_3x3', 2)", "('conv_7x1_1x7', 2)")).contains("unknown op 'conv_7x1_1x7'"));
        assert!(error(&DARTS_V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 5)")).contains("node 5 of the normal cell takes input 5"));
        assert!(error(&DARTS_V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 0)")).contains("takes input 0 twice"));
        assert!(error(&DARTS_V2.replace(", ('dil_conv_3x3', 2)", "")).contains("lists 7 (op, input) pairs"));
        assert!(error(&DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[4, 5]")).contains("normal_concat is [4, 5]"));
        assert!(error(&DARTS_V2.replace("reduce_concat", "reduce_cat")).contains("unknown field `reduce_cat`"));
        assert!(error(&format!("{DARTS_V2} extra")).contains("after the genotype"));
        let no_reduce = "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)])";
        assert!(error(no_reduce).contains("no `reduce` cell"));
    }
}
