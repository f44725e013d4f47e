//! The proxy end to end on a real OpenBao server (Transit): the
//! `[backend] type = "vault"` configuration is parsed and opened by `Proxy::build`,
//! and every request goes through the whole request path to Transit.

mod common;

use std::collections::HashMap;

use common::{
    DECRYPT_ONLY, DISABLED, ENCRYPT_ONLY, Harness, HarnessBuilder, KEY_1, KEY_2, NO_USAGE,
};
use xks_server::{Config, Proxy};
use xks_vault::testing::DevServer;

const TOKEN_VAR: &str = "XKS_TEST_VAULT_TOKEN";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_on_openbao_transit() {
    let bao = tokio::task::spawn_blocking(DevServer::start).await.unwrap();
    for key in [KEY_1, KEY_2, ENCRYPT_ONLY, DECRYPT_ONLY, NO_USAGE, DISABLED] {
        bao.create_key(key);
    }
    let base = Harness::builder().toml();
    let start = base.find("[backend]").unwrap();
    // Transit keys allow both operations: usage restrictions and the disabled
    // state are the proxy-side policy of this backend's configuration.
    let toml = format!(
        r#"{}[backend]
type = "vault"
addresses = ["{}"]
[backend.auth]
method = "token"
token = {{ env = "{TOKEN_VAR}" }}
[[backend.keys]]
id = "{ENCRYPT_ONLY}"
usage = "encrypt-only"
[[backend.keys]]
id = "{DECRYPT_ONLY}"
usage = "decrypt-only"
[[backend.keys]]
id = "{NO_USAGE}"
usage = "none"
[[backend.keys]]
id = "{DISABLED}"
disabled = true
"#,
        &base[..start],
        bao.address(),
    );
    let config = Config::from_toml(&toml).unwrap();
    let mut env: HashMap<String, String> = HarnessBuilder::env();
    env.insert(TOKEN_VAR.to_owned(), bao.root_token().to_owned());
    let proxy = Proxy::build(&config, &env).await.unwrap();
    assert_eq!(proxy.app.key_manager().backend_name(), "vault");

    let h = Harness::builder()
        .backend(proxy.app.key_manager().clone())
        .build()
        .await;
    common::end_to_end(&h).await;

    // Rotation in Transit: new encryptions use version 2, old ciphertexts decrypt.
    let before = h.encrypt(KEY_1).send().await.ciphertext();
    bao.expect_ok("POST", &format!("transit/keys/{KEY_1}/rotate"), None);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let after = loop {
        let ct = h.encrypt(KEY_1).send().await.ciphertext();
        if ct.metadata != before.metadata || std::time::Instant::now() > deadline {
            break ct;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(after.metadata.as_deref(), Some(&[1, 0, 0, 0, 2][..]));
    assert_eq!(
        h.decrypt(KEY_1, &before).send().await.plaintext(),
        b"Hello World!"
    );
    assert_eq!(
        h.decrypt(KEY_1, &after).send().await.plaintext(),
        b"Hello World!"
    );
}
