//! Encryption at rest for credential secrets: AES-256-GCM with a random nonce per value.
//! Stored form: nonce (12 bytes) followed by ciphertext and tag.

use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};

use super::StoreError;

/// Binds ciphertexts to their purpose, so a value cannot be replayed into another kind of column.
const AAD: &[u8] = b"entrasync credential v1";

pub struct SecretBox {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl SecretBox {
    /// From `secrets.key` (base64 of 32 bytes, validated by the configuration).
    pub fn from_setting(key: &SecretString) -> Result<SecretBox, StoreError> {
        let missing = || {
            StoreError::Config(
                "storing credentials needs ENTRASYNC_SECRETS_KEY (base64 of 32 random bytes: openssl rand -base64 32)"
                    .to_owned(),
            )
        };
        if key.expose_secret().is_empty() {
            return Err(missing());
        }
        let bytes = base64::engine::general_purpose::STANDARD.decode(key.expose_secret()).map_err(|_| missing())?;
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| missing())?;
        Ok(SecretBox { key: LessSafeKey::new(unbound), rng: SystemRandom::new() })
    }

    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| StoreError::Config("no system randomness".to_owned()))?;
        let mut sealed = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(AAD), &mut sealed)
            .map_err(|_| StoreError::Config("encryption failed".to_owned()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub fn open(&self, stored: &[u8]) -> Result<SecretString, StoreError> {
        let undecryptable = || {
            StoreError::Config(
                "a stored credential cannot be decrypted: ENTRASYNC_SECRETS_KEY differs from the key it was stored with"
                    .to_owned(),
            )
        };
        if stored.len() < NONCE_LEN {
            return Err(undecryptable());
        }
        let (nonce, sealed) = stored.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| undecryptable())?;
        let mut buffer = sealed.to_vec();
        let plain = self.key.open_in_place(nonce, Aad::from(AAD), &mut buffer).map_err(|_| undecryptable())?;
        let text = String::from_utf8(plain.to_vec()).map_err(|_| undecryptable())?;
        Ok(SecretString::from(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SecretString {
        SecretString::from(base64::engine::general_purpose::STANDARD.encode([byte; 32]))
    }

    #[test]
    fn seals_and_opens_and_never_stores_plaintext() {
        let sb = SecretBox::from_setting(&key(7)).unwrap();
        let sealed = sb.seal(b"client-secret-value").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"client"));
        assert_eq!(sb.open(&sealed).unwrap().expose_secret(), "client-secret-value");
        assert_ne!(sealed, sb.seal(b"client-secret-value").unwrap(), "a fresh nonce each time");
    }

    #[test]
    fn another_key_or_tampering_is_a_clear_error() {
        let sealed = SecretBox::from_setting(&key(7)).unwrap().seal(b"x").unwrap();
        let other = SecretBox::from_setting(&key(8)).unwrap();
        assert!(other.open(&sealed).unwrap_err().to_string().contains("ENTRASYNC_SECRETS_KEY"));
        assert!(SecretBox::from_setting(&SecretString::from(String::new())).is_err());
    }
}
