//! The password rule, shared by the bootstrap admin (config) and the accounts API.
//!
//! Length is what matters (NIST SP 800-63B): at least 12 characters, no composition
//! rules. The upper bound keeps a request from making argon2 hash megabytes.

pub const MIN_CHARS: usize = 12;
pub const MAX_BYTES: usize = 1024;

/// Why `password` is refused, if it is: a sentence naming the rule.
pub fn check(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(format!(
            "must be at least {MIN_CHARS} characters long (got {chars})"
        ));
    }
    if password.len() > MAX_BYTES {
        return Err(format!("must be at most {MAX_BYTES} bytes long"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn length_is_the_rule() {
        assert!(super::check("eleven-char")
            .unwrap_err()
            .contains("at least 12"));
        assert!(super::check("twelve-chars").is_ok());
        assert!(super::check("ééééééééééé").is_err(), "11 chars in 22 bytes");
        assert!(super::check(&"x".repeat(1025))
            .unwrap_err()
            .contains("at most"));
    }
}
