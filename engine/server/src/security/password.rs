//! Password hashing (argon2id, a random salt per password, PHC strings) and the proxy's cache of
//! verified credentials, so a slow hash is computed once per user and password, not per request.

use std::collections::HashMap;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use super::SecurityError;

/// OWASP's argon2id baseline: 19 MiB, 2 passes, 1 lane.
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A salted argon2id hash of `password` as a PHC string.
pub fn hash_password(password: &str) -> Result<String, SecurityError> {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| SecurityError::Internal(format!("hashing a password: {e}")))
}

/// Whether `password` matches the PHC string `hash` (a malformed hash matches nothing).
pub fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(e) => {
            tracing::warn!(error = %e, "a stored password hash is malformed");
            false
        }
    }
}

/// [`hash_password`] off the async runtime (it takes tens of milliseconds of CPU).
pub async fn hash_password_blocking(password: String) -> Result<String, SecurityError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| SecurityError::Internal(format!("hashing a password: {e}")))?
}

/// [`verify_password`] off the async runtime.
pub async fn verify_password_blocking(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false)
}

/// Credentials this process has verified: user → (the stored hash they were verified against,
/// a keyed digest of the password). An entry only counts while the user's stored hash is the
/// same, so a password change or a deleted user invalidates it; failures are never cached.
pub struct VerifiedCache {
    key: [u8; 32],
    entries: Mutex<HashMap<String, (String, [u8; 32])>>,
}

impl Default for VerifiedCache {
    fn default() -> Self {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        VerifiedCache {
            key,
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl VerifiedCache {
    fn digest(&self, user: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update((user.len() as u64).to_le_bytes());
        h.update(user.as_bytes());
        h.update(password.as_bytes());
        h.finalize().into()
    }

    /// Whether `user`/`password` was verified against `stored_hash` before.
    pub fn hit(&self, user: &str, password: &str, stored_hash: &str) -> bool {
        let d = self.digest(user, password);
        self.entries
            .lock()
            .get(user)
            .is_some_and(|(h, pd)| h == stored_hash && *pd == d)
    }

    pub fn remember(&self, user: &str, password: &str, stored_hash: &str) {
        let d = self.digest(user, password);
        let mut entries = self.entries.lock();
        // A bounded cache: users are few; a flood of distinct names cannot grow it past this.
        if entries.len() >= 10_000 && !entries.contains_key(user) {
            entries.clear();
        }
        entries.insert(user.to_string(), (stored_hash.to_string(), d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_salted_and_verify_only_the_right_password() {
        let a = hash_password("Milvus").unwrap();
        let b = hash_password("Milvus").unwrap();
        assert_ne!(a, b, "two hashes of one password differ by their salt");
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert!(!a.contains("Milvus"));
        assert!(verify_password("Milvus", &a));
        assert!(verify_password("Milvus", &b));
        assert!(!verify_password("milvus", &a));
        assert!(!verify_password("Milvus", "not a hash"));
    }

    #[test]
    fn the_cache_follows_the_stored_hash() {
        let cache = VerifiedCache::default();
        let h1 = hash_password("secret1").unwrap();
        assert!(!cache.hit("u", "secret1", &h1));
        cache.remember("u", "secret1", &h1);
        assert!(cache.hit("u", "secret1", &h1));
        assert!(!cache.hit("u", "secret2", &h1), "another password");
        assert!(!cache.hit("v", "secret1", &h1), "another user");
        let h2 = hash_password("secret1").unwrap();
        assert!(!cache.hit("u", "secret1", &h2), "the password was reset");
    }
}
