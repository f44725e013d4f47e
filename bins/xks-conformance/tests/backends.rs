//! The tester against our proxy on each real backend: PKCS#11 (a SoftHSM2 token) and
//! Vault Transit (an OpenBao dev server). Every required check passes, none fails.

mod common;

use std::collections::HashMap;

use common::{
    Backend, DECRYPT_ONLY, DISABLED, ENCRYPT_ONLY, KEY_1, KEY_2, NO_USAGE, OurProxy,
    assert_no_failures, run_tester,
};
use xks_pkcs11::Usage;
use xks_pkcs11::testing::SoftHsm;
use xks_vault::testing::DevServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkcs11_backend_passes_every_required_check() {
    let hsm = SoftHsm::shared();
    let admin = hsm.admin(0);
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
    let section = format!(
        "[backend]\ntype = \"pkcs11\"\nmodule = \"{}\"\npin_env = \"{}\"\n\
         [[backend.slots]]\ntoken_label = \"{}\"\n",
        hsm.module().display(),
        SoftHsm::PIN_ENV,
        hsm.token(0)
    );
    let env = HashMap::from([(SoftHsm::PIN_ENV.to_owned(), SoftHsm::USER_PIN.to_owned())]);
    let proxy = OurProxy::start(Backend::Toml(section, env), false).await;
    let report = run_tester(&proxy.args(), &[]).await;
    eprintln!("{}", report.to_text());
    assert_no_failures(&report);
}

const TOKEN_VAR: &str = "XKS_TEST_VAULT_TOKEN";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_backend_passes_every_required_check() {
    let bao = tokio::task::spawn_blocking(DevServer::start).await.unwrap();
    for key in [KEY_1, KEY_2, ENCRYPT_ONLY, DECRYPT_ONLY, NO_USAGE, DISABLED] {
        bao.create_key(key);
    }
    // Transit keys allow both operations: usage restrictions and the disabled state are
    // the proxy-side policy of this backend's configuration.
    let section = format!(
        r#"[backend]
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
        bao.address(),
    );
    let env = HashMap::from([(TOKEN_VAR.to_owned(), bao.root_token().to_owned())]);
    let proxy = OurProxy::start(Backend::Toml(section, env), false).await;
    let report = run_tester(&proxy.args(), &[]).await;
    eprintln!("{}", report.to_text());
    assert_no_failures(&report);
}
