//! The files people deploy with, checked by their ecosystem's own tools: every systemd unit in
//! `deploy/systemd` passes `systemd-analyze verify` (pointing at the built binary) and scores at
//! most 2.0 on `systemd-analyze security --offline=yes`.

use std::path::Path;
use std::process::Command;

#[test]
fn systemd_units_verify_and_are_hardened() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/systemd");
    let tmp = tempfile::tempdir().unwrap();
    let mut units = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("service") {
            continue;
        }
        units += 1;
        let name = path.file_name().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let unit = tmp.path().join(name);
        std::fs::write(
            &unit,
            text.replace("/usr/local/bin/pier", env!("CARGO_BIN_EXE_pier")),
        )
        .unwrap();
        let out = Command::new("systemd-analyze")
            .args(["verify"])
            .arg(&unit)
            .output()
            .expect("systemd-analyze runs (scripts/test installs systemd)");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "{name:?}: {stderr}"
        );
        // The threshold is the exposure level times ten.
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--threshold=20"])
            .arg(&unit)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name:?} is exposed: {}",
            stdout.lines().last().unwrap_or_default()
        );
    }
    assert_eq!(units, 3, "pier, pier-gateway and pier-backend@");
}
