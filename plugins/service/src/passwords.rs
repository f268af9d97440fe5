//! Password hashing as the services share it: bcrypt at cost 12 for every
//! hash written; bcrypt and the template's argon2id for hashes read, so a
//! database made by the original platform keeps working and is moved to
//! bcrypt one login at a time.

use crate::validate::PASSWORD_BYTES;
use crate::{ApiError, ApiResult};

/// Cost of every bcrypt hash written (the original's default).
pub const BCRYPT_COST: u32 = 12;

/// A bcrypt hash (cost 12) of a random password nobody knows. Checking a
/// login against it costs as much as checking a real one, so response times
/// do not reveal which emails exist.
pub const UNKNOWN_USER_HASH: &str = "$2b$12$w1nIe9vNmjIbNwiBpX5jBu2x2OoPMc6kMqf2rOe0HqB.AVTxmaNDa";

pub fn hash_password(password: &str) -> ApiResult<String> {
    bcrypt::hash(password, BCRYPT_COST).map_err(|e| ApiError::internal("hashing a password", e))
}

/// The result of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    No,
    Yes,
    /// It matches, and the stored hash should be replaced by a fresh bcrypt
    /// hash (an argon2id hash, or bcrypt below today's cost).
    YesRehash,
}

impl Verified {
    pub fn matches(self) -> bool {
        self != Verified::No
    }
}

/// Checks `password` against `stored`. A password longer than bcrypt can
/// read never matches (bcrypt would compare only its first 72 bytes), and a
/// hash that does not parse matches nothing; both cost what a real check
/// costs.
pub fn verify_password(password: &str, stored: &str) -> Verified {
    if password.len() > *PASSWORD_BYTES.end() {
        burn_one_check(password);
        return Verified::No;
    }
    if stored.starts_with("$argon2") {
        return match verify_argon2(password, stored) {
            true => Verified::YesRehash,
            false => Verified::No,
        };
    }
    match bcrypt::verify(password, stored) {
        Ok(true) if bcrypt_cost(stored).is_some_and(|cost| cost < BCRYPT_COST) => Verified::YesRehash,
        Ok(true) => Verified::Yes,
        Ok(false) => Verified::No,
        Err(_) => {
            burn_one_check(password);
            Verified::No
        }
    }
}

/// Spends the time of one real check, for answers that must not be faster
/// than a real check (an unknown email, an over-long password).
pub fn burn_one_check(password: &str) {
    let truncated = &password.as_bytes()[..password.len().min(*PASSWORD_BYTES.end())];
    let _ = bcrypt::verify(truncated, UNKNOWN_USER_HASH);
}

fn verify_argon2(password: &str, stored: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    match PasswordHash::new(stored) {
        Ok(hash) => argon2::Argon2::default().verify_password(password.as_bytes(), &hash).is_ok(),
        Err(_) => false,
    }
}

/// The cost field of a `$2b$12$...` hash.
fn bcrypt_cost(hash: &str) -> Option<u32> {
    hash.split('$').nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_user_hash_is_a_valid_cost_12_hash() {
        // verify() errors on a malformed hash; Ok(false) proves it parsed.
        assert_eq!(bcrypt::verify("anything", UNKNOWN_USER_HASH).ok(), Some(false));
        assert_eq!(bcrypt_cost(UNKNOWN_USER_HASH), Some(BCRYPT_COST));
    }

    #[test]
    fn bcrypt_reads_72_bytes_but_we_refuse_more() {
        let real = "r".repeat(72);
        let hash = bcrypt::hash(&real, 4).unwrap();
        assert_eq!(verify_password(&real, &hash), Verified::YesRehash, "cost 4 is below today's cost");
        let longer = format!("{real}and more");
        assert!(bcrypt::verify(&longer, &hash).unwrap_or(false), "bcrypt alone would accept it");
        assert_eq!(verify_password(&longer, &hash), Verified::No);
    }

    #[test]
    fn argon2id_hashes_from_the_template_verify_and_ask_for_a_rehash() {
        use argon2::password_hash::{PasswordHasher, SaltString};
        // Small parameters keep the test quick; the parameters travel in the hash.
        let params = argon2::Params::new(1024, 1, 1, None).unwrap();
        let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let salt = SaltString::encode_b64(b"sixteen byte salt").unwrap();
        let hash = argon.hash_password(b"template-password", &salt).unwrap().to_string();
        assert!(hash.starts_with("$argon2id$"));
        assert_eq!(verify_password("template-password", &hash), Verified::YesRehash);
        assert_eq!(verify_password("wrong-password", &hash), Verified::No);
    }

    #[test]
    fn malformed_hashes_match_nothing() {
        assert_eq!(verify_password("whatever1", "not-a-hash"), Verified::No);
        assert_eq!(verify_password("whatever1", "$argon2id$broken"), Verified::No);
    }
}
