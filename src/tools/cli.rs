//! Command-line parsing shared by the `userpci` binary and the examples: clap, plus one clear
//! message for a negative number given to an option that takes none.
//!
//! clap reads `--qd -1` as the option without a value followed by an unknown argument `-1`,
//! and says "unexpected argument '-1' found"; every tool says instead which option got which
//! value and what it accepts.

use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// `T::parse()`, with [`negative_number_message`] for a negative number.
pub fn parse_args<T: clap::Parser>() -> T {
    let args: Vec<OsString> = std::env::args_os().collect();
    match T::try_parse_from(&args) {
        Ok(parsed) => parsed,
        Err(err) => {
            if let Some(message) = negative_number_message(&err, &args) {
                eprintln!("error: {message}\n\nFor more information, try '--help'.");
                std::process::exit(2);
            }
            err.exit()
        }
    }
}

/// The message for clap's "unexpected argument" when that argument is a negative number:
/// the option before it, the value, and that it takes no negative number.
pub fn negative_number_message(err: &clap::Error, args: &[OsString]) -> Option<String> {
    if err.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(value)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    let negative = value
        .strip_prefix('-')
        .is_some_and(|digits| digits.parse::<f64>().is_ok());
    if !negative {
        return None;
    }
    let option = args
        .windows(2)
        .find(|pair| pair[1] == value.as_str())
        .and_then(|pair| pair[0].to_str())
        .filter(|previous| previous.starts_with("--"));
    Some(match option {
        Some(option) => format!(
            "invalid value '{value}' for '{option}': expected a number that is not negative (--help gives its range)"
        ),
        None => format!(
            "invalid value '{value}': expected a number that is not negative (--help gives its range)"
        ),
    })
}
