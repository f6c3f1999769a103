"""The real `bastion` command, run as a user would."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

PASSPHRASE = "cli test passphrase"


def bastion(home, *args, check=True):
    """Run `bastion --home HOME ARGS…` and return the completed process."""
    result = subprocess.run(
        [sys.executable, "-m", "bastion", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | {"COLUMNS": "200", "BASTION_PASSPHRASE": PASSPHRASE},
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}: {result.stdout}{result.stderr}")
    return result


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "ws"
    bastion(home, "init")
    return home


def test_init_creates_a_private_workspace_and_refuses_to_overwrite(home):
    """Init writes keys 0600 and a CA; a second init needs --force."""
    assert (home / "keys" / "local-kms.json").stat().st_mode & 0o777 == 0o600
    assert (home / "keys" / "token-signing.pem").stat().st_mode & 0o777 == 0o600
    assert (home / "tls" / "ca.pem").is_file() and (home / "policies" / "baseline.cedar").is_file()
    keystore = (home / "keys" / "local-kms.json").read_bytes()
    again = bastion(home, "init", check=False)
    assert again.returncode == 5 and "--force" in again.stderr
    assert (home / "keys" / "local-kms.json").read_bytes() == keystore
    bastion(home, "init", "--force")
    assert (home / "keys" / "local-kms.json").read_bytes() != keystore


def test_init_takes_a_folder_argument(tmp_path):
    """`bastion init DIR` creates the workspace in DIR."""
    bastion(tmp_path / "unused", "init", str(tmp_path / "elsewhere"))
    assert (tmp_path / "elsewhere" / "bastion.toml").is_file()


def test_commands_without_a_workspace_say_what_to_do(tmp_path):
    """Using a missing workspace prints the fix, not a traceback."""
    result = bastion(tmp_path / "none", "principal", "list", check=False)
    assert result.returncode == 2
    assert "bastion init" in result.stderr and "Traceback" not in result.stderr


def test_principal_lifecycle(home):
    """Add prints the secret once; list never shows it; disable marks the principal."""
    created = json.loads(
        bastion(
            home, "principal", "add", "ana", "--role", "analyst", "--attr", "team=fraud", "--json"
        ).stdout
    )
    assert created["client_id"].startswith("bcl_") and created["client_secret"].startswith("bsk_")
    listing = bastion(home, "principal", "list").stdout
    assert "ana" in listing and "team=fraud" in listing
    assert created["client_secret"] not in listing
    bastion(home, "principal", "disable", "ana")
    assert "disabled" in bastion(home, "principal", "list").stdout
    stored = (home / "bastion.db").read_bytes()
    assert created["client_secret"].encode() not in stored
    bad = bastion(
        home, "principal", "add", "bob", "--role", "analyst", "--attr", "oops", check=False
    )
    assert bad.returncode == 2 and "KEY=VALUE" in bad.stderr


def test_model_register_and_list(home, digits_file, tmp_path):
    """Register shows the signature; list shows versions; bad files get a clear error."""
    register = ["model", "register", str(digits_file), "--name", "digits", "--allow-unsigned"]
    out = bastion(home, *register).stdout
    assert "digits@1" in out and "pixels" in out and "FP32" in out
    guarded = ["--version", "b", "--top-k", "3", "--round", "2", "--output", "probabilities"]
    bastion(home, *register, *guarded)
    listing = bastion(home, "model", "list").stdout
    assert "digits" in listing and " b " in listing
    again = bastion(home, *register, "--version", "b", check=False)
    assert again.returncode == 5 and "immutable" in again.stderr
    roles = ["--role-policy", "partner:output=label", "--role-policy", "analyst:top-k=2,round=3"]
    bastion(home, *register, "--version", "r", "--round", "1", *roles)
    shown = " ".join(bastion(home, "model", "inspect", "digits@r").stdout.split())
    assert "round_digits=1; role analyst: top_k=2, round_digits=3; role partner:" in shown
    for bad, says in (
        ("partner", "ROLE:SETTING"),
        ("partner:top-k=x", "ROLE:SETTING"),
        ("Partner:round=1", "not a role name"),
        ("p:colour=red", "ROLE:SETTING"),
    ):
        refused = bastion(home, *register, "--version", "x", "--role-policy", bad, check=False)
        assert refused.returncode == 2 and says in refused.stderr, refused.stderr
    import numpy as np

    sample = tmp_path / "reference.npy"
    np.save(sample, np.zeros((10, 64)))
    bastion(home, *register, "--version", "c", "--reference", str(sample))
    pickled = tmp_path / "evil.npy"
    np.save(pickled, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    refused = bastion(home, *register, "--version", "d", "--reference", str(pickled), check=False)
    assert refused.returncode == 2 and "plain .npy" in refused.stderr
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"junk")
    bad = bastion(home, "model", "register", str(junk), "--name", "x", "--allow-unsigned",
                  check=False)  # fmt: skip
    assert bad.returncode == 2 and "not a valid ONNX model" in bad.stderr


def test_audit_commands(home, tmp_path):
    """verify, checkpoint, prove, search and export work; verify fails after an edit."""
    from bastion.audit import AuditEvent
    from bastion.settings import Settings
    from bastion.workspace import Workspace

    ws = Workspace(settings=Settings(home=home, passphrase=PASSPHRASE))
    ws.audit.append_many(
        [
            AuditEvent(
                event="model_infer",
                time=1.0 + n,
                request_id=f"r{n}",
                principal="bcl_x",
                auth_method="bearer",
                source="127.0.0.1",
                route="/v2/models/{name}/infer",
                action="infer",
                resource="m@1",
                decision="allow",
                policy_ids=("p",),
                status=200 if n else 403,
                latency_ms=1.0,
            )
            for n in range(3)
        ]
    )
    ws.close()
    witness = tmp_path / "witness.note"
    note = bastion(home, "audit", "checkpoint", "--export", str(witness)).stdout
    assert note.startswith("bastion-audit/") and witness.read_text() == note
    assert (
        "3 audit entries verified"
        in bastion(home, "audit", "verify", "--witness", str(witness)).stdout
    )
    proof = json.loads(bastion(home, "audit", "prove", "1").stdout)
    assert proof["tree_size"] == 3 and proof["inclusion_path"]
    assert "bcl_x" in bastion(home, "audit", "tail", "-n", "2").stdout
    assert "r0" not in bastion(home, "audit", "search", "--event", "model_infer").stdout
    exported = bastion(home, "audit", "export").stdout.splitlines()
    assert [json.loads(line)["request_id"] for line in exported] == ["r0", "r1", "r2"]
    syslog = bastion(home, "audit", "export", "--format", "syslog").stdout.splitlines()
    assert syslog[0].startswith("<132>1 1970-01-01T00:00:01.000000Z - bastion - model_infer ")
    assert bastion(home, "audit", "export", "--format", "cef").stdout.startswith("CEF:0|Bastion|")
    with sqlite3.connect(home / "bastion.db") as db:
        db.execute("update audit_entries set entry = replace(entry, 'allow', 'deny') where seq = 1")
    broken = bastion(home, "audit", "verify", check=False)
    assert broken.returncode != 0
    assert "Audit entry 1 was changed" in broken.stderr


def test_help_teaches(tmp_path):
    """--help lists the command groups with what they do."""
    out = bastion(tmp_path, "--help").stdout
    for command in ("init", "serve", "demo", "principal", "model", "audit"):
        assert command in out


def test_demo_runs_end_to_end(tmp_path):
    """`bastion demo` walks the whole path and exits 0."""
    result = bastion(tmp_path, "demo")
    assert "403 Forbidden" in result.stdout
    assert "forged" in result.stdout and "expired" in result.stdout
    assert "Merkle log verified" in result.stdout


def test_encrypt_and_decrypt_files(home, tmp_path):
    """Files round-trip; a wrong context or a damaged file leaves no output."""
    plain = tmp_path / "data.csv"
    plain.write_bytes(b"id,value\n" + b"1,2\n" * 50_000)
    bastion(home, "encrypt", str(plain), "--context", "dataset:sales")
    sealed = tmp_path / "data.csv.bst"
    assert b"id,value" not in sealed.read_bytes()
    out = tmp_path / "back.csv"
    wrong = bastion(home, "decrypt", str(sealed), "-o", str(out), "--context", "x", check=False)
    assert wrong.returncode == 7 and "Decryption failed" in wrong.stderr and not out.exists()
    bastion(home, "decrypt", str(sealed), "-o", str(out), "--context", "dataset:sales")
    assert out.read_bytes() == plain.read_bytes()
    again = bastion(
        home, "decrypt", str(sealed), "-o", str(out), "--context", "dataset:sales", check=False
    )
    assert again.returncode == 5 and "exists" in again.stderr


def test_keys_rotate_rewrap_retire(home, digits_file):
    """The key lifecycle from the CLI: rotate, rewrap, retire, and models still load."""
    bastion(home, "model", "register", str(digits_file), "--name", "digits", "--allow-unsigned")
    bastion(home, "keys", "rotate")
    status = bastion(home, "keys", "status").stdout
    assert "primary" in status and "use an older version" in status
    early = bastion(home, "keys", "retire", "1", check=False)
    assert early.returncode == 5 and "rewrap" in early.stderr
    assert "rewrapped to version 2" in bastion(home, "keys", "rewrap").stdout
    bastion(home, "keys", "retire", "1")
    assert "retired" in bastion(home, "keys", "status").stdout
    from bastion.settings import Settings
    from bastion.workspace import Workspace

    ws = Workspace(settings=Settings(home=home, passphrase=PASSPHRASE))
    assert ws.registry.load_artifact(ws.registry.get("digits"))
    ws.close()


def test_wrong_passphrase_is_refused(home):
    """A wrong passphrase stops every command with a clear message."""
    result = subprocess.run(
        [sys.executable, "-m", "bastion", "--home", str(home), "principal", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=os.environ | {"BASTION_PASSPHRASE": "not the right one"},
    )
    assert result.returncode == 2 and "Wrong passphrase" in result.stderr


def test_certs_client_and_server(home, tmp_path):
    """Certs client writes a private key and a certificate naming the principal."""
    created = json.loads(
        bastion(home, "principal", "add", "ana", "--role", "analyst", "--json").stdout
    )
    bastion(home, "certs", "client", "ana", "-o", str(tmp_path / "c"))
    key = tmp_path / "c" / "ana.key"
    assert key.stat().st_mode & 0o777 == 0o600
    from cryptography import x509

    from bastion.crypto.tls import client_id_of

    cert = x509.load_pem_x509_certificate((tmp_path / "c" / "ana.pem").read_bytes())
    from cryptography.hazmat.primitives import serialization

    assert client_id_of(cert.public_bytes(serialization.Encoding.DER)) == created["client_id"]
    unknown = bastion(home, "certs", "client", "nobody", check=False)
    assert unknown.returncode == 4 and "principal list" in unknown.stderr
    bastion(home, "certs", "server", "--host", "gateway.internal", "--host", "10.1.2.3")
    server = x509.load_pem_x509_certificate((home / "tls" / "server.pem").read_bytes())
    assert "gateway.internal" in str(server.extensions)


def test_policy_validate_test_and_explain(home, tmp_path):
    """Policies validate; a case file passes; a wrong expectation fails; explain names policies."""
    assert "policies valid" in bastion(home, "policy", "validate").stdout
    cases = tmp_path / "cases.toml"
    cases.write_text("""
[[case]]
name = "analysts may infer"
principal = { role = "analyst" }
action = "infer"
resource = "digits"
expect = "allow"
policies = ["analyst-use-models"]

[[case]]
name = "guests may not"
principal = { role = "guest", attributes = { team = "fraud" } }
action = "infer"
resource = "digits"
expect = "deny"

[[case]]
name = "auditors read the audit log"
principal = { role = "auditor" }
action = "read_audit"
resource = "gateway"
expect = "allow"
""")
    assert "3 cases pass" in bastion(home, "policy", "test", str(cases)).stdout
    cases.write_text(cases.read_text().replace('expect = "deny"', 'expect = "allow"'))
    failing = bastion(home, "policy", "test", str(cases), check=False)
    assert failing.returncode == 2 and "FAIL" in failing.stdout and "1 of 3" in failing.stderr
    explained = bastion(
        home, "policy", "explain", "--role", "analyst", "--action", "infer", "--resource", "digits"
    ).stdout
    assert "ALLOW" in explained and "analyst-use-models" in explained
    denied = bastion(home, "policy", "explain", "--role", "guest", "--action", "infer").stdout
    assert "DENY" in denied and "deny by default" in denied
    (home / "policies" / "broken.cedar").write_text(
        "permit(principal, action, resource) when { principal.salary > 3 };"
    )
    broken = bastion(home, "policy", "validate", check=False)
    assert broken.returncode == 2 and "schema" in broken.stderr


def test_apikey_lifecycle(home):
    """Apikey create prints the key once; list shows it without the secret; revoke marks it."""
    bastion(home, "principal", "add", "ana", "--role", "analyst")
    created = json.loads(
        bastion(
            home,
            "apikey",
            "create",
            "ana",
            "--action",
            "infer",
            "--model",
            "digits",
            "--days",
            "7",
            "--json",
        ).stdout
    )
    assert created["api_key"].startswith(f"bak_{created['key_id']}_")
    listing = bastion(home, "apikey", "list").stdout
    assert created["key_id"] in listing and created["api_key"] not in listing
    bastion(home, "apikey", "revoke", created["key_id"])
    assert "revoked" in bastion(home, "apikey", "list").stdout
    nobody = bastion(home, "apikey", "create", "zed", "--action", "infer", check=False)
    assert nobody.returncode == 4 and "zed" in nobody.stderr


def test_robustness_train_eval_register_and_inspect(home, tmp_path):
    """Train with a defense, evaluate, and keep the verdict with the registered version."""
    model, onnx_file, report = tmp_path / "m.safetensors", tmp_path / "m.onnx", tmp_path / "report"
    trained = bastion(
        home,
        "robustness",
        "train",
        "digits",
        "-o",
        str(model),
        "--defense",
        "fgsm-rs",
        "--epochs",
        "3",
        "--onnx",
        str(onnx_file),
    )
    assert "clean test accuracy" in trained.stdout and model.is_file() and onnx_file.is_file()
    evaluated = bastion(
        home,
        "robustness",
        "eval",
        str(model),
        "--samples",
        "40",
        "--linf",
        "0.1",
        "--l2",
        "",
        "--clip",
        "0:1",
        "--levels",
        "16",
        "-o",
        str(report),
    )
    assert "Clean accuracy" in evaluated.stdout
    assert json.loads((report / "robustness.json").read_text())["samples"] == 40
    bastion(
        home,
        "model",
        "register",
        str(onnx_file),
        "--name",
        "mlp",
        "--clip",
        "0:1",
        "--levels",
        "16",
        "--robustness",
        str(report / "robustness.json"),
        "--risk-tier",
        "high",
        "--classification",
        "confidential",
        "--allow-unsigned",
    )
    shown = bastion(home, "model", "inspect", "mlp").stdout
    assert "clip=[0.0, 1.0], levels=16" in shown and "Clean accuracy" in shown and "linf" in shown
    assert "risk tier: high, classification: confidential" in shown
    typo = bastion(
        home, "model", "register", str(onnx_file), "--name", "x", "--risk-tier", "hgh", check=False
    )
    assert typo.returncode != 0 and "risk tier must be one of" in typo.stderr
    bad = bastion(
        home, "model", "register", str(onnx_file), "--name", "mlp2", "--levels", "4", check=False
    )
    assert bad.returncode != 0 and "clip" in bad.stderr
    wrong = bastion(home, "robustness", "eval", str(onnx_file), "--data", "nope", check=False)
    assert wrong.returncode != 0 and "Unknown data" in wrong.stderr


def test_robustness_commands_teach_in_their_help(tmp_path):
    """`bastion robustness --help` lists train, eval and reference with an example."""
    home = tmp_path / "unused"  # help needs no workspace
    shown = bastion(home, "robustness", "--help").stdout
    assert all(word in shown for word in ("train", "eval", "reference", "bastion robustness train"))
    assert "--client-id" in bastion(home, "redteam", "--help").stdout


def test_scan_refuses_a_malicious_pickle_and_passes_safe_files(tmp_path, digits_file):
    """`bastion scan` exits non-zero on a malicious pickle and names the import; --json too."""
    home = tmp_path / "unused"  # scanning needs no workspace
    folder = tmp_path / "models"
    folder.mkdir()
    evil = folder / "evil.pkl"
    evil.write_bytes(b"cos\nsystem\n(S'id'\ntR.")
    refused = bastion(home, "scan", str(folder), str(digits_file), check=False)
    assert refused.returncode == 7 and "os.system (code execution)" in refused.stdout
    assert "1 of 2 files failed the scan" in refused.stderr and "│ safe" in refused.stdout
    reports = json.loads(bastion(home, "scan", "--json", str(evil), check=False).stdout)
    assert reports[0]["safe"] is False and reports[0]["imports"] == ["os.system"]


def test_model_keygen_sign_and_verify(home, tmp_path, digits_file):
    """Sign, verify, trust and register signed; after one changed byte registration fails (7)."""
    folder = tmp_path / "fraud"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(digits_file.read_bytes())
    key = tmp_path / "signer.pem"
    bastion(home, "model", "keygen", str(key))
    assert key.stat().st_mode & 0o777 == 0o600 and key.with_suffix(".pub.json").is_file()
    bastion(home, "model", "sign", str(folder), "--key", str(key), "--name", "fraud",
            "--owner", "risk-team", "--risk-tier", "high")  # fmt: skip
    trust = ("--trust", str(key.with_suffix(".pub.json")))
    assert "all 1 files verified" in bastion(home, "model", "verify", str(folder), *trust).stdout
    register = ("model", "register", str(folder / "model.onnx"), "--name", "fraud")
    unsigned = bastion(home, *register, check=False)
    assert unsigned.returncode == 7 and "not a trusted signer" in unsigned.stderr
    bastion(home, "model", "trust", str(key.with_suffix(".pub.json")))
    assert "Registered fraud@1" in bastion(home, *register).stdout
    data = bytearray((folder / "model.onnx").read_bytes())
    data[100] ^= 1
    (folder / "model.onnx").write_bytes(bytes(data))
    refused = bastion(home, *register, check=False)
    assert refused.returncode == 7 and "does not match" in refused.stderr


def test_model_promote_is_gated_authorized_and_audited(home, tmp_path, digits_file):
    """Only a signed version goes to production, only for an admin; every attempt is audited."""
    folder = tmp_path / "fraud"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(digits_file.read_bytes())
    key = tmp_path / "signer.pem"
    bastion(home, "model", "keygen", str(key))
    bastion(home, "model", "sign", str(folder), "--key", str(key), "--name", "fraud",
            "--owner", "risk-team")  # fmt: skip
    bastion(home, "model", "trust", str(key.with_suffix(".pub.json")))
    model = str(folder / "model.onnx")
    bastion(home, "model", "register", model, "--name", "fraud")
    added = [
        json.loads(bastion(home, "principal", "add", who, "--role", role, "--json").stdout)
        for who, role in (("root", "admin"), ("ana", "analyst"))
    ]
    admin, analyst = (created["client_id"] for created in added)
    register = ("model", "register", model, "--name", "fraud", "--allow-unsigned", "--principal")
    refused = bastion(home, *register, analyst, check=False)  # Cedar: register is for admins
    assert refused.returncode == 3 and "denied" in refused.stderr
    assert "Registered fraud@2" in bastion(home, *register, admin).stdout  # 2: unsigned
    denied = bastion(home, "model", "promote", "fraud", "1", "--principal", analyst, check=False)
    assert denied.returncode == 3 and "denied" in denied.stderr
    unsigned = bastion(home, "model", "promote", "fraud", "2", "--principal", admin, check=False)
    assert unsigned.returncode == 2 and "no signed manifest" in unsigned.stderr
    promoted = bastion(home, "model", "promote", "fraud", "1", "--principal", admin)
    assert "fraud@1 is in production" in promoted.stdout
    listing = bastion(home, "model", "list").stdout
    assert "production" in listing and "staging" in listing
    tail = bastion(home, "audit", "tail", "-n", "5").stdout
    assert "model_promote" in tail and "model_register" in tail
    assert tail.count("authz_fail") == 2  # the analyst's register and promote


def test_robustness_without_pytorch_says_how_to_install_it(monkeypatch):
    """Without torch the robustness commands stop with the install line, not a traceback."""
    import importlib.util

    from bastion.cli.robustness import require_toolkit
    from bastion.errors import ConfigError

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"pip install torch==2\.13\.0"):
        require_toolkit()


def test_pii_scan_mask_and_reveal(home, tmp_path):
    """Scan finds PII; mask follows the policy; reveal is denied, then allowed by a policy."""
    notes = tmp_path / "notes.txt"
    notes.write_text("nothing here\nMail ann@example.com or call +44 20 7946 0958\n")
    scanned = bastion(home, "pii", "scan", str(notes), "--json")
    assert [json.loads(line)["where"] for line in scanned.stdout.splitlines()] == [
        f"{notes}:2:6",
        f"{notes}:2:30",
    ]
    assert "ann@example.com" not in scanned.stdout
    table = tmp_path / "customers.csv"
    table.write_text("id,name,ssn,notes\n1,Ann Lee,536-22-1234,call +44 20 7946 0958\n")
    policy = tmp_path / "customers.mask.toml"
    policy.write_text(
        'dataset = "customers"\n[columns]\nid = "keep"\nname = "tokenize"\nssn = "fpe"\n'
    )
    masked = tmp_path / "masked.csv"
    shown = bastion(home, "mask", str(table), "--policy", str(policy), "-o", str(masked))
    assert "1 rows masked" in shown.stdout and "1 PHONE" in shown.stdout
    row = masked.read_text().splitlines()[1].replace('"', "").split(",")
    assert row[0] == "1" and row[1].startswith("tok_") and row[3] == "call <PHONE>"
    created = bastion(home, "principal", "add", "officer", "--role", "privacy-officer", "--json")
    officer = json.loads(created.stdout)["client_id"]
    args = ["--dataset", "customers", "--principal", officer]
    denied = bastion(
        home, "pii", "reveal", row[1], "--field", "name", "--method", "token", *args, check=False
    )
    assert denied.returncode == 3 and "denied" in denied.stderr
    (home / "policies" / "privacy.cedar").write_text(
        '@id("officer")\npermit (principal in Bastion::Role::"privacy-officer", '
        'action == Bastion::Action::"reidentify", resource == Bastion::Dataset::"customers");\n'
    )
    assert (
        bastion(home, "pii", "reveal", row[1], "--field", "name", "--method", "token", *args).stdout
        == "Ann Lee\n"
    )
    assert (
        bastion(home, "pii", "reveal", row[2], "--field", "ssn", "--method", "fpe", *args).stdout
        == "536-22-1234\n"
    )


def test_dp_register_budget_and_query(home, tmp_path):
    """A registered dataset answers within its budget, then exits 9 when it is spent."""
    table = tmp_path / "census.csv"
    table.write_text("age\n" + "".join(f"{20 + i % 50}\n" for i in range(1000)))
    assert "1,000 rows" in bastion(home, "dp", "register", "census", str(table)).stdout
    assert "everyone" in bastion(home, "dp", "budget", "census", "--epsilon", "1").stdout
    (home / "policies" / "census.cedar").write_text(
        '@id("census")\npermit (principal, action == Bastion::Action::"query_data", '
        'resource == Bastion::Dataset::"census");\n'
    )
    created = bastion(home, "principal", "add", "ana", "--role", "analyst", "--json")
    ana = json.loads(created.stdout)["client_id"]
    ask = ["dp", "query", "census", "mean(age, 0, 100)", "--principal", ana, "--json"]
    answer = json.loads(bastion(home, *ask, "--epsilon", "0.8").stdout)
    assert abs(answer["value"] - 44.5) < 5 and answer["epsilon_left"] == 0.2
    refused = bastion(home, *ask, "--epsilon", "0.5", check=False)
    assert refused.returncode == 9 and "budget" in refused.stderr


def test_anonymize_then_verify(tmp_path):
    """A release from `bastion anonymize` passes `bastion verify-anonymity`; the raw table fails."""
    from bastion.privacy.anonymity import synthetic_adult
    from bastion.privacy.tabular import write_table

    source = tmp_path / "adult.csv"
    write_table(synthetic_adult(3000, seed=4), source)
    home = tmp_path / "unused"  # neither command needs a workspace
    options = ["--qi", "age,sex,race,education", "--sensitive", "income", "--k", "8", "--l", "2"]
    made = bastion(home, "anonymize", str(source), "-o", str(tmp_path / "out.parquet"), *options)
    assert "3,000 rows released" in made.stdout
    assert (
        "Every class meets"
        in bastion(home, "verify-anonymity", str(tmp_path / "out.parquet"), *options).stdout
    )
    raw = bastion(home, "verify-anonymity", str(source), *options, check=False)
    assert raw.returncode == 7 and "not a safe release" in raw.stderr


def test_dp_train_writes_a_model_and_its_claim(tmp_path):
    """`bastion dp train` reaches its ε and writes privacy.json for `model sign --privacy`."""
    folder = tmp_path / "dp"
    trained = bastion(
        tmp_path / "unused",
        "dp",
        "train",
        "--epsilon",
        "4",
        "--epochs",
        "1",
        "-o",
        str(folder / "model.safetensors"),
    )
    assert "test accuracy" in trained.stdout
    claim = json.loads((folder / "privacy.json").read_text())
    assert 3.7 < claim["epsilon"] <= 4 and claim["mechanism"].startswith("DP-SGD")
    assert (folder / "model.safetensors").stat().st_size > 1000


def test_model_register_needs_a_signed_manifest_unless_told_otherwise(home, digits_file):
    """Safe by default: no manifest.json beside the model, no registration (and a way out)."""
    refused = bastion(home, "model", "register", str(digits_file), "--name", "d", check=False)
    assert refused.returncode == 2
    assert "bastion model sign" in refused.stderr and "--allow-unsigned" in refused.stderr
    assert bastion(home, "model", "inspect", "d", check=False).returncode == 4  # not found


def audit_entries(home):
    """The audit log read back through `bastion audit export` (one JSON object a line)."""
    return [json.loads(line) for line in bastion(home, "audit", "export").stdout.splitlines()]


def test_pii_reveal_audits_every_attempt_without_values_or_secrets(home, tmp_path):
    """Unknown, disabled, unpermitted, bad token, success: one audit entry each, no values."""
    table = tmp_path / "customers.csv"
    table.write_text("id,name\n1,Zelda Quartermaine\n")
    policy = tmp_path / "customers.mask.toml"
    policy.write_text('dataset = "customers"\n[columns]\nid = "keep"\nname = "tokenize"\n')
    masked = tmp_path / "masked.csv"
    bastion(home, "mask", str(table), "--policy", str(policy), "-o", str(masked))
    token = masked.read_text().splitlines()[1].replace('"', "").split(",")[1]
    added = [
        json.loads(bastion(home, "principal", "add", name, "--role", role, "--json").stdout)
        for name, role in (("officer", "privacy-officer"), ("gone", "privacy-officer"))
    ]
    officer, gone = (created["client_id"] for created in added)
    bastion(home, "principal", "disable", "gone")
    (home / "policies" / "privacy.cedar").write_text(
        '@id("officer")\npermit (principal in Bastion::Role::"privacy-officer", '
        'action == Bastion::Action::"reidentify", resource == Bastion::Dataset::"customers");\n'
    )
    unknown_id = "bcl_" + "0" * 24
    secret = added[0]["client_secret"]
    attempts = [  # (principal, dataset, token, exit code)
        (unknown_id, "customers", token, 4),
        (secret, "customers", token, 4),  # a secret pasted as the id: never written down
        ("officer", "customers", token, 4),  # a name is not a client id
        (gone, "customers", token, 3),
        (officer, "payroll", token, 3),  # no policy permits this dataset
        (officer, "customers", "tok_" + "a" * 26, 4),  # not in the vault
        (officer, "customers", "not-a-token", 2),
        (officer, "customers", token, 0),
    ]
    before = len(audit_entries(home))
    for who, dataset, value, code in attempts:
        result = bastion(
            home, "pii", "reveal", value, "--field", "name", "--method", "token",
            "--dataset", dataset, "--principal", who, check=False,
        )  # fmt: skip
        assert result.returncode == code, (who, dataset, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
    assert result.stdout == "Zelda Quartermaine\n"
    entries = audit_entries(home)[before:]
    reveals = [e for e in entries if e["action"] == "reidentify"]
    assert len(reveals) == len(attempts)
    assert [(e["decision"], e["status"]) for e in reveals] == [
        ("deny", 403), ("deny", 403), ("deny", 403), ("deny", 403), ("deny", 403),
        ("allow", 404), ("allow", 400), ("allow", 200),
    ]  # fmt: skip
    principals = [e["principal"] for e in reveals]
    assert principals[0] == unknown_id and principals[3:] == [gone] + [officer] * 4
    assert all(p.startswith("unknown:") and len(p) == 24 for p in principals[1:3])
    assert principals[1] != principals[2]
    with sqlite3.connect(home / "bastion.db") as db:
        rows = db.execute("select entry from audit_entries").fetchall()
    stored = [e if isinstance(e, bytes) else str(e).encode() for (e,) in rows]
    written = bastion(home, "audit", "export").stdout.encode() + b"\n".join(stored)
    for needle in ("Zelda", "Quartermaine", secret, token):
        assert needle.encode() not in written


def test_dp_query_checks_every_number_before_charging(home, tmp_path):
    """ε of 5e-324, 0, below 0, NaN, inf or 1e308 exits 2 and the budget stays untouched."""
    table = tmp_path / "census.csv"
    table.write_text("age\n" + "".join(f"{20 + i % 50}\n" for i in range(200)))
    bastion(home, "dp", "register", "census", str(table))
    bastion(home, "dp", "budget", "census", "--epsilon", "1")
    (home / "policies" / "census.cedar").write_text(
        '@id("census")\npermit (principal, action == Bastion::Action::"query_data", '
        'resource == Bastion::Dataset::"census");\n'
    )
    created = bastion(home, "principal", "add", "ana", "--role", "analyst", "--json")
    ana = json.loads(created.stdout)["client_id"]
    shown = bastion(home, "dp", "budget", "census").stdout
    for epsilon in ("5e-324", "0", "-1", "nan", "inf", "1e308", "11"):
        for spec in ("count", "mean(age, 0, 100)"):
            ask = ["dp", "query", "census", spec, "--principal", ana, "--epsilon", epsilon]
            result = bastion(home, *ask, check=False)
            assert result.returncode == 2 and "epsilon" in result.stderr, (epsilon, result)
            assert "Traceback" not in result.stderr
    for spec in ("sum(age, -1e308, 1e308)", "mean(age, 0, 1e16)", "quantile(age, nan, 0, 1)"):
        result = bastion(home, "dp", "query", "census", spec, "--principal", ana,
                         "--epsilon", "0.5", check=False)  # fmt: skip
        assert result.returncode == 2, (spec, result)
    for epsilon, delta in (("5e-324", "0"), ("nan", "0"), ("1", "nan"), ("1", "-1"), ("1", "1")):
        result = bastion(home, "dp", "budget", "census", "--epsilon", epsilon,
                         "--delta", delta, check=False)  # fmt: skip
        assert result.returncode == 2, (epsilon, delta, result)
    assert bastion(home, "dp", "budget", "census").stdout == shown
    unknown = bastion(home, "dp", "query", "census", "count", "--principal", "bcl_" + "f" * 24,
                      "--epsilon", "0.5", check=False)  # fmt: skip
    assert unknown.returncode == 4 and bastion(home, "dp", "budget", "census").stdout == shown
    [refusal] = [e for e in audit_entries(home) if e["action"] == "query_data"]
    assert (refusal["principal"], refusal["decision"]) == ("bcl_" + "f" * 24, "deny")


def test_encrypt_and_decrypt_write_owner_only_files_and_leave_nothing_on_failure(home, tmp_path):
    """Outputs are 0600; a tampered file, wrong context or existing target leaves no file."""
    plain = tmp_path / "in" / "data.bin"
    plain.parent.mkdir()
    plain.write_bytes(os.urandom(300_000))
    out = tmp_path / "out"
    out.mkdir()
    bastion(home, "encrypt", str(plain), "-o", str(out / "data.bst"))
    assert (out / "data.bst").stat().st_mode & 0o777 == 0o600
    tampered = tmp_path / "in" / "tampered.bst"
    sealed = bytearray((out / "data.bst").read_bytes())
    sealed[-5] ^= 1  # in the last segment: every earlier segment authenticates first
    tampered.write_bytes(bytes(sealed))
    result = bastion(home, "decrypt", str(tampered), "-o", str(out / "t.bin"), check=False)
    assert result.returncode == 7
    wrong = bastion(home, "decrypt", str(out / "data.bst"), "-o", str(out / "w.bin"),
                    "--context", "other", check=False)  # fmt: skip
    assert wrong.returncode == 7
    assert sorted(p.name for p in out.iterdir()) == ["data.bst"]
    bastion(home, "decrypt", str(out / "data.bst"), "-o", str(out / "data.bin"))
    assert (out / "data.bin").read_bytes() == plain.read_bytes()
    assert (out / "data.bin").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in out.iterdir()) == ["data.bin", "data.bst"]


@pytest.mark.parametrize("command", ["decrypt", "encrypt"])
def test_a_killed_decrypt_or_encrypt_leaves_no_file_at_all(home, tmp_path, command):
    """SIGKILL half way through a large stream fed slowly through a FIFO: no file, no .partial."""
    import signal
    import time

    plain = tmp_path / "big.bin"
    plain.write_bytes(os.urandom(8 * 1024 * 1024))
    bastion(home, "encrypt", str(plain), "-o", str(tmp_path / "big.bst"))
    source = (tmp_path / ("big.bst" if command == "decrypt" else "big.bin")).read_bytes()
    fifo = tmp_path / "feed"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    out.mkdir()
    child = subprocess.Popen(
        [sys.executable, "-m", "bastion", "--home", str(home), command, str(fifo),
         "-o", str(out / "result")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,  # never a pipe nobody reads, which could block the child
        env=os.environ | {"BASTION_PASSPHRASE": PASSPHRASE},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:  # open for writing only once the child has opened the FIFO to read
            try:
                feed = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:
                assert child.poll() is None and time.monotonic() < deadline, "never opened"
                time.sleep(0.05)
        os.set_blocking(feed, True)
        # Half the stream: every write returns only once the child has read what came
        # before (a pipe holds 64 KiB), so it has verified and written megabytes of output.
        os.write(feed, source[: len(source) // 2])
        # Until the output file is open in the child (named, or unnamed: "out/#123 (deleted)").
        while not any(path.startswith(str(out)) for path in _open_paths(child.pid)):
            assert child.poll() is None and time.monotonic() < deadline, "never wrote"
            time.sleep(0.05)
        assert child.poll() is None  # blocked reading the FIFO: mid-run
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        os.close(feed)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    assert list(out.iterdir()) == []  # neither the target nor a hidden .partial


def _open_paths(pid):
    """What ``pid``'s open file descriptors point at (ones closed meanwhile are skipped)."""
    folder = f"/proc/{pid}/fd"
    paths = []
    for name in os.listdir(folder):
        try:
            paths.append(os.readlink(f"{folder}/{name}"))
        except OSError:
            continue
    return paths


def test_pii_reveal_by_fpe_audits_refusals_and_bad_values_too(home, tmp_path):
    """FPE reveals: unknown id, bad value, success each audited; bad --method is a usage error."""
    table = tmp_path / "people.csv"
    table.write_text("id,ssn\n1,536-22-1234\n")
    policy = tmp_path / "people.mask.toml"
    policy.write_text('dataset = "people"\n[columns]\nid = "keep"\nssn = "fpe"\n')
    masked = tmp_path / "masked.csv"
    bastion(home, "mask", str(table), "--policy", str(policy), "-o", str(masked))
    value = masked.read_text().splitlines()[1].replace('"', "").split(",")[1]
    created = bastion(home, "principal", "add", "officer", "--role", "privacy-officer", "--json")
    officer = json.loads(created.stdout)["client_id"]
    (home / "policies" / "privacy.cedar").write_text(
        '@id("officer")\npermit (principal in Bastion::Role::"privacy-officer", '
        'action == Bastion::Action::"reidentify", resource == Bastion::Dataset::"people");\n'
    )
    args = ["pii", "reveal", "--field", "ssn", "--dataset", "people"]
    before = len(audit_entries(home))
    outcomes = [
        bastion(home, *args, value, "--method", "fpe", "--principal", "nobody", check=False),
        bastion(home, *args, "12", "--method", "fpe", "--principal", officer, check=False),
        bastion(home, *args, value, "--method", "fpe", "--principal", officer, check=False),
        bastion(home, *args, value, "--method", "rot13", "--principal", officer, check=False),
    ]
    assert [r.returncode for r in outcomes] == [4, 2, 0, 2]
    assert outcomes[2].stdout == "536-22-1234\n"
    reveals = [e for e in audit_entries(home)[before:] if e["action"] == "reidentify"]
    assert [(e["decision"], e["status"]) for e in reveals] == [
        ("deny", 403),
        ("allow", 400),
        ("allow", 200),
    ]
    assert reveals[0]["principal"].startswith("unknown:")
    exported = bastion(home, "audit", "export").stdout
    assert "536-22-1234" not in exported and value not in exported


def test_model_register_and_promote_audit_every_attempt_even_by_unknown_principals(
    home, digits_file
):
    """Unknown id, pasted secret, denied, missing version, failed gate: each one audit entry."""
    added = [
        json.loads(bastion(home, "principal", "add", who, "--role", role, "--json").stdout)
        for who, role in (("root", "admin"), ("ana", "analyst"))
    ]
    admin, analyst = (created["client_id"] for created in added)
    secret = added[0]["client_secret"]
    unknown_id = "bcl_" + "0" * 24
    register = ["model", "register", str(digits_file), "--name", "fraud", "--allow-unsigned"]
    promote = ["model", "promote", "fraud"]
    attempts = [  # (command, principal, exit code, action, decision, status)
        ([*register, "--principal"], unknown_id, 4, "register", "deny", 403),
        ([*register, "--principal"], secret, 4, "register", "deny", 403),
        ([*register, "--principal"], analyst, 3, "register", "deny", 403),
        ([*register, "--principal"], admin, 0, "register", "allow", 200),
        ([*promote, "1", "--principal"], unknown_id, 4, "promote", "deny", 403),
        ([*promote, "1", "--principal"], "root", 4, "promote", "deny", 403),  # a name, not an id
        ([*promote, "1", "--principal"], secret, 4, "promote", "deny", 403),
        ([*promote, "9", "--principal"], analyst, 3, "promote", "deny", 403),  # no oracle
        ([*promote, "9", "--principal"], admin, 4, "promote", "allow", 404),
        ([*promote, "1", "--principal"], admin, 2, "promote", "allow", 400),  # unsigned: gated
    ]
    before = len(audit_entries(home))
    for command, who, code, *_ in attempts:
        result = bastion(home, *command, who, check=False)
        assert result.returncode == code, (command, who, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
    entries = [e for e in audit_entries(home)[before:] if e["action"] in ("register", "promote")]
    assert [(e["action"], e["decision"], e["status"]) for e in entries] == [
        tuple(attempt[3:]) for attempt in attempts
    ]
    principals = [e["principal"] for e in entries]
    assert principals[0] == principals[4] == unknown_id
    assert all(principals[i].startswith("unknown:") for i in (1, 5, 6))
    assert principals[1] == principals[6] != principals[5]
    assert entries[8]["resource"] == "fraud@9" and entries[9]["resource"] == "fraud@1"
    with sqlite3.connect(home / "bastion.db") as db:
        rows = db.execute("select entry from audit_entries").fetchall()
    stored = b"\n".join(e if isinstance(e, bytes) else str(e).encode() for (e,) in rows)
    assert secret.encode() not in stored + bastion(home, "audit", "export").stdout.encode()


def test_a_killed_mask_leaves_no_file_at_all(home, tmp_path):
    """SIGKILL once a masked batch is in the output (fed through a FIFO): no file, no .partial."""
    import signal
    import time

    rows = "".join(
        json.dumps({"id": str(i), "email": f"person{i}@example.com", "note": "x" * 40}) + "\n"
        for i in range(150_000)  # over two batches of 65,536 rows
    ).encode()
    policy = tmp_path / "people.mask.toml"
    policy.write_text('dataset = "people"\n[columns]\nid = "keep"\nemail = "pseudonym"\n'
                      'note = "keep"\n')  # fmt: skip
    fifo = tmp_path / "feed.jsonl"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    out.mkdir()
    child = subprocess.Popen(
        [sys.executable, "-m", "bastion", "--home", str(home), "mask", str(fifo),
         "--policy", str(policy), "-o", str(out / "masked.jsonl")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,  # never a pipe nobody reads, which could block the child
        env=os.environ | {"BASTION_PASSPHRASE": PASSPHRASE},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:  # open for writing only once the child has opened the FIFO to read
            try:
                feed = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:
                assert child.poll() is None and time.monotonic() < deadline, "never opened"
                time.sleep(0.05)
        os.set_blocking(feed, True)
        # Two thirds of the rows: the child has read past the first batch, masked it and
        # written it, and now waits for the rest.
        os.write(feed, rows[: len(rows) * 2 // 3])
        while _bytes_written_under(child.pid, out) == 0:  # the output holds masked rows
            assert child.poll() is None and time.monotonic() < deadline, "never wrote"
            time.sleep(0.05)
        assert child.poll() is None  # blocked reading the FIFO: mid-run
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        os.close(feed)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    assert list(out.iterdir()) == []  # neither the target nor a hidden .partial


def _bytes_written_under(pid, folder):
    """The size of the largest file ``pid`` has open under ``folder`` (named or unnamed)."""
    sizes = [0]
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{name}").startswith(str(folder)):
                sizes.append(os.stat(f"/proc/{pid}/fd/{name}").st_size)
        except OSError:
            continue
    return max(sizes)


def test_mask_and_anonymize_never_overwrite_and_write_owner_only(home, tmp_path):
    """An existing -o (or the source by another name) exits 5 untouched; new outputs are 0600."""
    from bastion.privacy.anonymity import synthetic_adult
    from bastion.privacy.tabular import write_table

    source = tmp_path / "adult.csv"
    write_table(synthetic_adult(500, seed=4), source)
    original = source.read_bytes()
    (tmp_path / "alias.csv").hardlink_to(source)
    (tmp_path / "taken.csv").write_text("keep me\n")
    policy = tmp_path / "adult.mask.toml"
    policy.write_text('dataset = "adult"\n[columns]\nage = "keep"\n')
    qi = ["--qi", "age,sex", "--k", "5"]
    for target in ("alias.csv", "taken.csv"):
        for command in (
            ["mask", str(source), "--policy", str(policy)],
            ["anonymize", str(source), *qi],
        ):
            result = bastion(home, *command, "-o", str(tmp_path / target), check=False)
            assert result.returncode == 5 and "exists" in result.stderr, (command, result.stderr)
            assert "Traceback" not in result.stderr
    assert source.read_bytes() == original and (tmp_path / "taken.csv").read_text() == "keep me\n"
    bastion(home, "mask", str(source), "--policy", str(policy), "-o", str(tmp_path / "m.csv"))
    bastion(home, "anonymize", str(source), *qi, "-o", str(tmp_path / "r.csv"))
    for made in ("m.csv", "r.csv"):
        assert (tmp_path / made).stat().st_mode & 0o777 == 0o600


def test_dp_train_writes_new_owner_only_files_and_never_over_earlier_ones(tmp_path):
    """A taken model or privacy.json exits 5 before training; outputs are 0600, nothing else."""
    home = tmp_path / "unused"
    train = ["dp", "train", "--epsilon", "4", "--epochs", "1", "-o"]
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "privacy.json").write_text('{"epsilon": 1}\n')
    refused = bastion(home, *train, str(taken / "model.safetensors"), check=False)
    assert refused.returncode == 5 and "privacy.json exists" in refused.stderr
    assert sorted(p.name for p in taken.iterdir()) == ["privacy.json"]
    assert (taken / "privacy.json").read_text() == '{"epsilon": 1}\n'
    folder = tmp_path / "dp"
    bastion(home, *train, str(folder / "model.safetensors"))
    assert sorted(p.name for p in folder.iterdir()) == ["model.safetensors", "privacy.json"]
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in folder.iterdir())
    model = (folder / "model.safetensors").read_bytes()
    again = bastion(home, *train, str(folder / "model.safetensors"), check=False)
    assert again.returncode == 5 and "exists" in again.stderr
    assert (folder / "model.safetensors").read_bytes() == model


def test_arguments_that_are_not_utf8_are_refused_or_audited_never_a_traceback(home, tmp_path):
    """C1: non-UTF-8 --principal: audited unknown (exit 4); other text: usage error (exit 2)."""
    table = tmp_path / "census.csv"
    table.write_text("age\n" + "".join(f"{20 + i % 50}\n" for i in range(100)))
    bastion(home, "dp", "register", "census", str(table))
    bastion(home, "dp", "budget", "census", "--epsilon", "1")
    added = bastion(home, "principal", "add", "ana", "--role", "analyst", "--json").stdout
    ana = json.loads(added)["client_id"]
    # Python hands bytes that are not UTF-8 to subprocess as lone surrogates (os.fsencode).
    bad_ids = ["bcl_\udcff", "\udcff\udcfe", "bcl_" + "\udce9" * 24, "bcl_\udcc3"]
    acting = [
        ["dp", "query", "census", "count", "--epsilon", "0.1", "--principal"],
        ["pii", "reveal", "tok_x", "--field", "name", "--method", "token",
         "--dataset", "customers", "--principal"],
        ["model", "promote", "fraud", "1", "--principal"],
    ]  # fmt: skip
    before = len(audit_entries(home))
    for command in acting:
        for who in bad_ids:
            result = bastion(home, *command, who, check=False)
            assert result.returncode == 4, (command, who, result.stderr)
            assert "Traceback" not in result.stderr and "No such principal" in result.stderr
    entries = audit_entries(home)[before:]
    assert len(entries) == len(acting) * len(bad_ids)
    assert all(e["decision"] == "deny" and e["status"] == 403 for e in entries)
    principals = [e["principal"] for e in entries]
    assert all(p.startswith("unknown:") and len(p) == 24 for p in principals)
    assert len(set(principals)) == len(bad_ids)  # one digest per id, the same each time
    refused = [
        ["dp", "query", "cen\udcff", "count", "--epsilon", "0.1", "--principal", ana],
        ["pii", "reveal", "tok_x", "--field", "\udcff", "--method", "token",
         "--dataset", "customers", "--principal", ana],
        ["pii", "reveal", "tok_\udcff", "--field", "name", "--method", "token",
         "--dataset", "customers", "--principal", ana],
        ["model", "promote", "fr\udcff", "1", "--principal", ana],
        ["dp", "budget", "census", "--epsilon", "1", "--principal", "bcl_\udcff"],
        ["dp", "budget", "c\udcff"],
        ["principal", "add", "n\udcff", "--role", "analyst"],
        ["principal", "add", "nn", "--role", "analyst", "--attr", "team=\udcff"],
        ["principal", "add", "nn", "--role", "analyst", "--attr", "t\udcff=x"],
        ["principal", "add", "nn", "--role", "r\udcff"],
        ["principal", "disable", "n\udcff"],
        ["apikey", "create", "\udcff", "--action", "infer", "--model", "digits"],
    ]  # fmt: skip
    before = len(audit_entries(home))
    for command in refused:
        result = bastion(home, *command, check=False)
        assert result.returncode == 2, (command, result.stderr)
        assert "Traceback" not in result.stderr and "UTF-8" in result.stderr, command
    assert len(audit_entries(home)) == before  # refused before anything ran
    listed = bastion(home, "principal", "list")
    assert "ana" in listed.stdout and "nn" not in listed.stdout
