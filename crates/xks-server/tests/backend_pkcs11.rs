//! The proxy end to end on a real SoftHSM2 token: the `[backend] type = "pkcs11"`
//! configuration is parsed and opened by `Proxy::build`, and every request goes
//! through the whole request path to the HSM; once with the workers using the
//! token objects (`session_key_copies = false`), once with SoftHSM's default
//! (session copies of the keys), each on a token of its own.
#![expect(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::collections::HashMap;

use common::{
    DECRYPT_ONLY, DISABLED, ENCRYPT_ONLY, Harness, HarnessBuilder, KEY_1, KEY_2, NO_USAGE,
};
use xks_pkcs11::Usage;
use xks_pkcs11::testing::SoftHsm;
use xks_server::{Config, Proxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_on_a_softhsm_token_without_session_key_copies() {
    proxy_on_softhsm(0, "session_key_copies = false\n").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_on_a_softhsm_token() {
    proxy_on_softhsm(1, "").await;
}

/// The proxy on SoftHSM token `token`, with `extra` in its `[backend]` section.
async fn proxy_on_softhsm(token: usize, extra: &str) {
    let hsm = SoftHsm::shared();
    let admin = hsm.admin(token);
    for (label, usage) in [
        (KEY_1, Usage::ENCRYPT_DECRYPT),
        (KEY_2, Usage::ENCRYPT_DECRYPT),
        (ENCRYPT_ONLY, Usage::ENCRYPT_ONLY),
        (DECRYPT_ONLY, Usage::DECRYPT_ONLY),
        (NO_USAGE, Usage::NONE),
        (DISABLED, Usage::ENCRYPT_DECRYPT),
    ] {
        admin.create_key(label, usage).unwrap();
    }
    admin.set_disabled(DISABLED, true).unwrap();

    let base = Harness::builder().toml();
    let start = base.find("[backend]").unwrap();
    let toml = format!(
        "{}[backend]\ntype = \"pkcs11\"\nmodule = \"{}\"\npin_env = \"{}\"\n\
         {extra}\
         [[backend.slots]]\ntoken_label = \"{}\"\n",
        &base[..start],
        hsm.module().display(),
        SoftHsm::PIN_ENV,
        hsm.token(token)
    );
    let config = Config::from_toml(&toml).unwrap();
    let mut env: HashMap<String, String> = HarnessBuilder::env();
    env.insert(SoftHsm::PIN_ENV.to_owned(), SoftHsm::USER_PIN.to_owned());
    let proxy = Proxy::build(&config, &env).await.unwrap();
    assert_eq!(proxy.app.key_manager().backend_name(), "pkcs11");

    let h = Harness::builder()
        .backend(proxy.app.key_manager().clone())
        .build()
        .await;
    common::end_to_end(&h).await;

    // A new version on the token, picked up on reload: new encryptions use it
    // and old ciphertexts still decrypt.
    let before = h.encrypt(KEY_1).send().await.ciphertext();
    admin.create_version(KEY_1).unwrap();
    xks_server::reload(&proxy.app, &config, &env).await.unwrap();
    let after = h.encrypt(KEY_1).send().await.ciphertext();
    assert_ne!(before.metadata, after.metadata, "a new key version");
    assert_eq!(after.metadata.as_deref(), Some(&[1, 0, 0, 0, 2][..]));
    assert_eq!(
        h.decrypt(KEY_1, &before).send().await.plaintext(),
        b"Hello World!"
    );
}
