//! The fake's KMS: symmetric keys per account and region, reached by id,
//! ARN, alias or alias ARN. `Encrypt` really encrypts (AES-256-GCM under
//! the key's own random material, the encryption context as associated
//! data), so a wrong key or context fails as in KMS (`IncorrectKeyException`,
//! `InvalidCiphertextException`), and no ciphertext holds its plaintext.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use rand::RngCore as _;
use secrecy::{ExposeSecret as _, SecretBox, SecretSlice};
use stacks::ids::{AccountId, Region};

use super::super::FakeCloud;
use super::super::outputs::uuid_like;
use super::{KMS, SecretsState, error, place};
use crate::aws::AwsError;
use crate::aws::secrets::{ClientScope, EncryptionContext, Kms};

/// What every fake KMS ciphertext starts with.
const CIPHERTEXT_MAGIC: &[u8] = b"fake-kms:";

pub(super) struct Key {
    arn: String,
    material: SecretBox<[u8; 32]>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("arn", &self.arn)
            .finish_non_exhaustive()
    }
}

impl SecretsState {
    /// The key id `key` names (an id, a key ARN, an alias or an alias ARN).
    fn resolve_key(&self, account: &AccountId, region: Region, key: &str) -> Option<String> {
        let name = key.rsplit_once(':').map_or(key, |(_, tail)| tail);
        if let Some(alias) = name.strip_prefix("alias/") {
            return self
                .aliases
                .get(&place(account, region, &format!("alias/{alias}")))
                .cloned();
        }
        let id = name.strip_prefix("key/").unwrap_or(name);
        self.keys
            .contains_key(&place(account, region, id))
            .then(|| id.to_owned())
    }
}

impl FakeCloud {
    /// Creates a symmetric KMS key in `account` and `region`, with `alias`
    /// (e.g. `alias/docproc-secrets`) when given; returns the key's ARN.
    pub fn create_kms_key(
        &self,
        account: &AccountId,
        region: Region,
        alias: Option<&str>,
    ) -> String {
        let mut state = self.lock();
        let seq = state.secrets.next_seq();
        let id = uuid_like(&format!("kms-key/{account}/{region}/{seq}"));
        let arn = format!("arn:aws:kms:{region}:{account}:key/{id}");
        let mut material = [0u8; 32];
        rand::rng().fill_bytes(&mut material);
        state.secrets.keys.insert(
            place(account, region, &id),
            Key {
                arn: arn.clone(),
                material: SecretBox::new(Box::new(material)),
            },
        );
        if let Some(alias) = alias {
            state
                .secrets
                .aliases
                .insert(place(account, region, alias), id);
        }
        arn
    }
}

/// The fake's [`Kms`].
#[derive(Debug)]
pub struct FakeKms {
    cloud: FakeCloud,
    scope: ClientScope,
}

impl FakeKms {
    /// A client acting in `scope`.
    pub fn new(cloud: FakeCloud, scope: ClientScope) -> Self {
        Self { cloud, scope }
    }
}

/// The associated data of a fake ciphertext: the context, canonically.
fn context_aad(context: &EncryptionContext) -> Vec<u8> {
    serde_json::to_vec(context).expect("a string map serializes")
}

fn cipher(key: &Key) -> Aes256Gcm {
    Aes256Gcm::new_from_slice(key.material.expose_secret()).expect("32-byte key")
}

fn invalid_ciphertext(operation: &'static str) -> AwsError {
    error(KMS, operation, "InvalidCiphertextException", "")
}

#[async_trait]
impl Kms for FakeKms {
    async fn encrypt(
        &self,
        key_id: &str,
        plaintext: &SecretSlice<u8>,
        context: &EncryptionContext,
    ) -> Result<Vec<u8>, AwsError> {
        const OP: &str = "Encrypt";
        let (account, region) = self.cloud.scoped_call(&self.scope, KMS, OP).await?;
        let state = self.cloud.lock();
        let not_found = || {
            error(
                KMS,
                OP,
                "NotFoundException",
                &format!("Key '{key_id}' does not exist"),
            )
        };
        let id = state
            .secrets
            .resolve_key(&account, region, key_id)
            .ok_or_else(not_found)?;
        let key = state
            .secrets
            .keys
            .get(&place(&account, region, &id))
            .ok_or_else(not_found)?;
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = cipher(key)
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.expose_secret(),
                    aad: &context_aad(context),
                },
            )
            .expect("AES-GCM encrypts");
        let mut blob = CIPHERTEXT_MAGIC.to_vec();
        blob.extend_from_slice(id.as_bytes());
        blob.push(b':');
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        Ok(blob)
    }

    async fn decrypt(
        &self,
        key_id: &str,
        ciphertext: &[u8],
        context: &EncryptionContext,
    ) -> Result<SecretSlice<u8>, AwsError> {
        const OP: &str = "Decrypt";
        let (account, region) = self.cloud.scoped_call(&self.scope, KMS, OP).await?;
        let state = self.cloud.lock();
        let rest = ciphertext
            .strip_prefix(CIPHERTEXT_MAGIC)
            .ok_or_else(|| invalid_ciphertext(OP))?;
        let colon = rest
            .iter()
            .position(|b| *b == b':')
            .ok_or_else(|| invalid_ciphertext(OP))?;
        let (id, rest) = rest.split_at(colon);
        let id = std::str::from_utf8(id).map_err(|_| invalid_ciphertext(OP))?;
        let rest = &rest[1..];
        if rest.len() < 12 {
            return Err(invalid_ciphertext(OP));
        }
        let key = state
            .secrets
            .keys
            .get(&place(&account, region, id))
            .ok_or_else(|| invalid_ciphertext(OP))?;
        if state
            .secrets
            .resolve_key(&account, region, key_id)
            .as_deref()
            != Some(id)
        {
            return Err(error(
                KMS,
                OP,
                "IncorrectKeyException",
                "The key ID in the request does not identify a CMK that can perform this operation.",
            ));
        }
        let (nonce, sealed) = rest.split_at(12);
        let plaintext = cipher(key)
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &context_aad(context),
                },
            )
            .map_err(|_| invalid_ciphertext(OP))?;
        Ok(SecretSlice::from(plaintext))
    }
}
