//! The Debian package's files that are derived from others stay in step with them: the
//! installed config (`packaging/debian/holdfast.toml`) is the embedded default
//! (`config/holdfast.toml`) with routes read from /etc/holdfast/routes, line for line, and the
//! package metadata in Cargo.toml installs what the unit and the README say it does.
//! (scripts/package-test.sh builds, installs, checks and purges the package itself.)
//!
//! After changing config/holdfast.toml: `HOLDFAST_BLESS=1 cargo test --test packaging`
//! rewrites the packaged config.

use holdfast::Config;

const SOURCE: &str = include_str!("../config/holdfast.toml");
const PACKAGED_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/packaging/debian/holdfast.toml"
);
const CARGO_TOML: &str = include_str!("../Cargo.toml");
const UNIT: &str = include_str!("../systemd/holdfast.service");

/// Each (line of config/holdfast.toml, its line in the installed config); nothing else differs.
const EDITS: [(&str, &str); 4] = [
    (
        "# holdfast configuration. Every key is shown with its default; this file is also the embedded",
        "# holdfast configuration, as the Debian package installs it: every key is shown with its",
    ),
    (
        "# default that holdfast uses when started without --config. Unknown keys are an error.",
        "# default, and routes are read from /etc/holdfast/routes. Unknown keys are an error. Local edits\n\
         # are kept on upgrades; `systemctl reload holdfast` applies them (see `holdfast check-config`).",
    ),
    (
        "# routes_file = \"routes\"",
        "routes_file = \"/etc/holdfast/routes\"",
    ),
    (
        "routes = \"* 127.0.0.1:8080\\n\"",
        "# routes = \"* 127.0.0.1:8080\\n\"",
    ),
];

fn packaged_from_source() -> String {
    let mut out = String::with_capacity(SOURCE.len() + 256);
    let mut used = [0; EDITS.len()];
    for line in SOURCE.lines() {
        match EDITS.iter().position(|(from, _)| *from == line) {
            Some(i) => {
                used[i] += 1;
                out.push_str(EDITS[i].1);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    assert_eq!(
        used,
        [1; EDITS.len()],
        "each edited line must appear once in config/holdfast.toml; update EDITS"
    );
    out
}

#[test]
fn the_packaged_config_is_the_default_with_routes_from_etc() {
    let expected = packaged_from_source();
    if std::env::var_os("HOLDFAST_BLESS").is_some() {
        std::fs::write(PACKAGED_PATH, &expected).expect("write the packaged config");
    }
    let packaged = std::fs::read_to_string(PACKAGED_PATH).expect("packaging/debian/holdfast.toml");
    assert!(
        packaged == expected,
        "packaging/debian/holdfast.toml is not config/holdfast.toml with the package's edits: \
         run HOLDFAST_BLESS=1 cargo test --test packaging"
    );
    let installed = Config::from_toml(&packaged, None).expect("the packaged config parses");
    installed.validate().expect("the packaged config is valid");
    assert_eq!(
        installed.server.routes_file.as_deref(),
        Some(std::path::Path::new("/etc/holdfast/routes"))
    );
    // Apart from where the routes come from, it is the embedded default.
    let mut same = installed.clone();
    same.server.routes_file = None;
    assert_eq!(format!("{same:?}"), format!("{:?}", Config::embedded()));
}

/// The `[package.metadata.deb]` table of Cargo.toml.
fn deb_metadata() -> toml::Table {
    let manifest: toml::Table = toml::from_str(CARGO_TOML).expect("Cargo.toml parses");
    manifest["package"]["metadata"]["deb"]
        .as_table()
        .expect("[package.metadata.deb]")
        .clone()
}

#[test]
fn the_package_installs_what_the_unit_runs_and_keeps_edits_to_its_config() {
    let deb = deb_metadata();
    let assets: Vec<(String, String, String)> = deb["assets"]
        .as_array()
        .expect("assets")
        .iter()
        .map(|a| {
            let a = a.as_array().expect("[source, dest, mode]");
            let s = |i: usize| a[i].as_str().expect("strings").to_string();
            (s(0), s(1), s(2))
        })
        .collect();
    let dest = |d: &str| assets.iter().find(|a| a.1 == d);
    let root = env!("CARGO_MANIFEST_DIR");
    for (source, _, _) in &assets {
        if !source.starts_with("target/") {
            assert!(
                std::path::Path::new(root).join(source).is_file(),
                "asset {source} is missing"
            );
        }
    }
    // The unit runs /usr/bin/holdfast with the installed config.
    assert!(UNIT.contains("ExecStart=/usr/bin/holdfast --config /etc/holdfast/holdfast.toml\n"));
    assert_eq!(dest("usr/bin/").map(|a| a.2.as_str()), Some("755"));
    let config = dest("etc/holdfast/holdfast.toml").expect("the config is installed");
    assert_eq!(
        (config.0.as_str(), config.2.as_str()),
        ("packaging/debian/holdfast.toml", "640")
    );
    assert_eq!(
        dest("etc/holdfast/routes").map(|a| a.0.as_str()),
        Some("config/routes")
    );
    // Conffiles: dpkg keeps an administrator's edits on upgrade.
    let conffiles: Vec<&str> = deb["conf-files"]
        .as_array()
        .expect("conf-files")
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    for (_, dest, _) in assets.iter().filter(|a| a.1.starts_with("etc/")) {
        assert!(
            conffiles.contains(&format!("/{dest}").as_str()),
            "/{dest} is not a conffile"
        );
    }
    // Installed, not enabled or started; restarted on upgrade only if running.
    let units = deb["systemd-units"].as_table().expect("systemd-units");
    assert_eq!(units["unit-scripts"].as_str(), Some("systemd/"));
    assert_eq!(units["enable"].as_bool(), Some(false));
    assert_eq!(units["start"].as_bool(), Some(false));
}
