//! Validation of `[admin]`: the listen address and its clashes with balancers.

use super::*;

fn admin(listen: &str) -> impl Fn(&mut Config) + '_ {
    move |c| c.admin = Some(AdminConfig { listen: listen.to_string() })
}

const ADMIN: &[Case] = &[
    Case { name: "loopback", edit: |c| admin("127.0.0.1:9900")(c), expect: &[] },
    Case { name: "port 0", edit: |c| admin("127.0.0.1:0")(c), expect: &[] },
    Case { name: "IPv6 loopback", edit: |c| admin("[::1]:9900")(c), expect: &[] },
    Case { name: "no admin section", edit: |c| c.admin = None, expect: &[] },
    Case { name: "host name", edit: |c| admin("localhost:9900")(c), expect: &[("admin.listen", "\"localhost:9900\" is not an IP:port listen address")] },
    Case { name: "no port", edit: |c| admin("127.0.0.1")(c), expect: &[("admin.listen", "is not an IP:port")] },
    Case { name: "port too big", edit: |c| admin("127.0.0.1:99999")(c), expect: &[("admin.listen", "is not an IP:port")] },
    Case { name: "empty", edit: |c| admin("")(c), expect: &[("admin.listen", "\"\" is not an IP:port")] },
    Case { name: "unbracketed IPv6", edit: |c| admin("::1:9900")(c), expect: &[("admin.listen", "is not an IP:port")] },
    Case { name: "garbage", edit: |c| admin("\u{0}\n:9900")(c), expect: &[("admin.listen", "is not an IP:port")] },
    Case { name: "same address as a balancer", edit: |c| admin("127.0.0.1:8080")(c), expect: &[("admin.listen", "127.0.0.1:8080 clashes with balancer \"web\" listening on 127.0.0.1:8080")] },
    Case { name: "wildcard on a balancer's port", edit: |c| admin("0.0.0.0:8080")(c), expect: &[("admin.listen", "clashes with balancer \"web\"")] },
    Case { name: "dual-stack wildcard on a balancer's port", edit: |c| admin("[::]:8080")(c), expect: &[("admin.listen", "clashes with balancer \"web\"")] },
    Case { name: "another port", edit: |c| admin("0.0.0.0:8081")(c), expect: &[] },
];

#[test]
fn admin_listen_addresses() {
    run(ADMIN);
}

#[test]
fn admin_section_parses_and_round_trips() {
    let text = format!("{BASE}\n[admin]\nlisten = \"127.0.0.1:9900\"\n");
    let config = valid(&text);
    assert_eq!(config.admin, Some(AdminConfig { listen: "127.0.0.1:9900".into() }));
    let again = parsed(&to_toml(&config).expect("serialises"));
    assert_eq!(again, config);
    assert_eq!(parsed(BASE).admin, None, "absent by default: no admin listener");
    assert!(!to_toml(&parsed(BASE)).expect("serialises").contains("admin"));
}
