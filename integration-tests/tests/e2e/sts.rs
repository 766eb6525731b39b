//! STS: assuming a role lands in the role's account, and accounts are apart.

use aws_config::SdkConfig;
use integration_tests::{
    MOTO_DEFAULT_ACCOUNT_ID, ROLE_SESSION_NAME, assume_role, random_account_id, random_external_id,
};

use crate::base_config;

async fn caller_identity(config: &SdkConfig) -> (String, String) {
    let identity = aws_sdk_sts::Client::new(config)
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity");
    (
        identity.account().expect("Account").to_owned(),
        identity.arn().expect("Arn").to_owned(),
    )
}

#[tokio::test]
async fn dummy_credentials_land_in_moto_default_account() {
    let base = base_config().await;
    let (account, _) = caller_identity(&base).await;
    assert_eq!(account, MOTO_DEFAULT_ACCOUNT_ID);
}

#[tokio::test]
async fn assume_role_lands_in_the_role_account_and_accounts_are_isolated() {
    let base = base_config().await;
    let account_a = random_account_id();
    let account_b = loop {
        let id = random_account_id();
        if id != account_a {
            break id;
        }
    };
    let role = "CoordinatorAccess";

    let in_a = assume_role(&base, &account_a, role, &random_external_id())
        .await
        .expect("assume role in account A");
    let (account, arn) = caller_identity(&in_a).await;
    assert_eq!(account, account_a);
    assert_eq!(
        arn,
        format!("arn:aws:sts::{account_a}:assumed-role/{role}/{ROLE_SESSION_NAME}")
    );

    let in_b = assume_role(&base, &account_b, role, &random_external_id())
        .await
        .expect("assume role in account B");
    let (account, arn) = caller_identity(&in_b).await;
    assert_eq!(account, account_b);
    assert_eq!(
        arn,
        format!("arn:aws:sts::{account_b}:assumed-role/{role}/{ROLE_SESSION_NAME}")
    );

    // A's credentials still land in A after B's were issued.
    let (account, _) = caller_identity(&in_a).await;
    assert_eq!(account, account_a);
}

#[tokio::test]
async fn assume_role_rejects_short_external_id_and_bad_account_id() {
    let base = base_config().await;
    let short = "x".repeat(31);
    let err = assume_role(&base, &random_account_id(), "R", &short)
        .await
        .expect_err("31-character ExternalId must be rejected");
    assert!(err.to_string().contains("ExternalId"), "{err:#}");

    let err = assume_role(&base, "12345678901", "R", &random_external_id())
        .await
        .expect_err("11-digit account id must be rejected");
    assert!(err.to_string().contains("12 digits"), "{err:#}");
}
