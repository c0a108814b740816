//! Tests of the config model: parsing, validation rules, round trips and properties.

mod parse;

use super::*;

/// Parses `text`, panicking with the error when it does not parse.
fn parsed(text: &str) -> Config {
    match parse(text) {
        Ok(c) => c,
        Err(e) => panic!("does not parse: {e}\n{text}"),
    }
}

/// Parses and validates `text`, panicking with every problem when it is not valid.
fn valid(text: &str) -> Config {
    match parse_and_validate(text) {
        Ok(c) => c,
        Err(errors) => panic!("not valid: {errors:#?}\n{text}"),
    }
}

#[test]
fn example_parses_and_validates_clean() {
    let config = valid(EXAMPLE);
    assert_eq!(config.balancers.len(), 2);
    assert_eq!(config.pools.len(), 3);
}
