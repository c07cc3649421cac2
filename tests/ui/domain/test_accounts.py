"""Accounts and sessions: hashing, timing-equal login, throttle, expiry, revocation, bootstrap."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from argon2 import PasswordHasher
from domain_helpers import PASSWORD, make_user, with_settings

from left4me_ui import accounts, authz, boot, settings
from left4me_ui.authz import Forbidden
from left4me_ui.core import Core

# Captured at import, before the autouse fixture swaps in a cheap hasher.
PRODUCTION_HASHER, PRODUCTION_DUMMY = accounts._hasher, accounts._DUMMY_HASH


def test_login_returns_a_session_and_stores_only_the_token_hash(core, alice):
    login = accounts.login(core, "alice", PASSWORD, "203.0.113.5")
    assert login.actor == alice
    assert accounts.validate_session(core, login.token) == alice
    with core.db.connect() as conn:
        dump = "\n".join(conn.iterdump())
        pw_hash = conn.execute("SELECT pw_hash FROM users WHERE name='alice'").fetchone()[0]
    assert login.token not in dump
    assert accounts.token_digest(login.token) in dump
    assert pw_hash.startswith("$argon2id$") and PASSWORD not in dump


@pytest.mark.parametrize("name, password", [("alice", "wrong password!"),
                                            ("nobody", PASSWORD)])
def test_wrong_password_and_unknown_user_fail_alike(core, alice, name, password):
    with pytest.raises(accounts.LoginFailed) as failed:
        accounts.login(core, name, password, "203.0.113.5")
    assert str(failed.value) == "wrong user name or password"


def test_unknown_user_costs_one_argon2_verify_against_the_dummy_hash(core, alice,
                                                                     cheap_hasher):
    with pytest.raises(accounts.LoginFailed):
        accounts.login(core, "nobody", PASSWORD, "203.0.113.5")
    assert cheap_hasher.verified == [accounts._DUMMY_HASH]
    # The dummy costs what a real hash costs: same argon2 parameters.
    with core.db.connect() as conn:
        real = conn.execute("SELECT pw_hash FROM users WHERE name='alice'").fetchone()[0]
    assert accounts._DUMMY_HASH.split("$")[:4] == real.split("$")[:4]
    cheap_hasher.verified.clear()
    with pytest.raises(accounts.LoginFailed):
        accounts.login(core, "alice", "wrong password!", "203.0.113.5")
    assert cheap_hasher.verified == [real]


def test_production_hashes_use_argon2id_with_the_librarys_default_cost():
    default = PasswordHasher()
    assert PRODUCTION_HASHER.time_cost == default.time_cost >= 2
    assert PRODUCTION_HASHER.memory_cost == default.memory_cost >= 19 * 1024
    assert PRODUCTION_DUMMY.startswith(f"$argon2id$v=19$m={default.memory_cost},")


def test_disabled_user_cannot_log_in_even_with_the_right_password(core, admin, alice):
    accounts.set_disabled(core, admin, alice.user_id, True)
    with pytest.raises(accounts.LoginFailed):
        accounts.login(core, "alice", PASSWORD, "203.0.113.5")


def test_repeated_failures_lock_the_account_for_the_guessers_then_the_window_frees_it(
        core, clock, alice):
    limit = core.settings.throttle_account_failures
    for attempt in range(limit):
        with pytest.raises(accounts.LoginFailed):
            accounts.login(core, "alice", "wrong password!", f"198.51.100.{attempt}")
    # A client that failed recently is refused without a check, even with the right password.
    with pytest.raises(accounts.Throttled) as throttled:
        accounts.login(core, "alice", PASSWORD, "198.51.100.0")
    assert 0 < throttled.value.retry_after <= core.settings.throttle_window_seconds
    clock.advance(throttled.value.retry_after + 1)
    assert accounts.login(core, "alice", PASSWORD, "198.51.100.0").actor == alice


def test_guessers_do_not_lock_the_owner_out(core, alice):
    for attempt in range(3 * core.settings.throttle_account_failures):
        with pytest.raises((accounts.LoginFailed, accounts.Throttled)):
            accounts.login(core, "alice", "wrong password!", f"198.51.100.{attempt % 3}")
    # alice, from her own address (no failure there), gets in: no lockout button
    assert accounts.login(core, "alice", PASSWORD, "203.0.113.77").actor == alice
    # and one guess from a fresh address is checked once, then that address waits too
    with pytest.raises(accounts.LoginFailed):
        accounts.login(core, "alice", "wrong password!", "192.0.2.99")
    with pytest.raises(accounts.Throttled):
        accounts.login(core, "alice", "wrong password!", "192.0.2.99")


def _slow_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """argon2 takes ~50 ms in production: a verify that takes 80 ms, counted."""
    checked: list[str] = []
    real_verify = accounts._verify

    def slow_verify(pw_hash: str, password: str) -> bool:
        checked.append(password)
        time.sleep(0.08)
        return real_verify(pw_hash, password)

    monkeypatch.setattr(accounts, "_verify", slow_verify)
    return checked


def _at_once(attempts: list[tuple[str, str, str]], core: Core) -> list[object]:
    """Every (name, password, client) login at the same moment, as a thread pool runs them."""
    start = threading.Barrier(len(attempts))

    def one(name: str, password: str, client: str) -> object:
        start.wait()
        try:
            return accounts.login(core, name, password, client)
        except (accounts.LoginFailed, accounts.Throttled) as refused:
            return refused

    with ThreadPoolExecutor(len(attempts)) as pool:
        return list(pool.map(lambda attempt: one(*attempt), attempts))


def test_forty_concurrent_guesses_get_no_more_checks_than_the_limit(core, alice, monkeypatch):
    checked = _slow_checks(monkeypatch)
    outcomes = _at_once([("alice", f"guess number {i}", "198.51.100.66") for i in range(40)],
                        core)
    limit = core.settings.throttle_account_failures
    assert len(checked) <= limit
    assert sum(isinstance(o, accounts.LoginFailed) for o in outcomes) == len(checked)
    assert sum(isinstance(o, accounts.Throttled) for o in outcomes) == 40 - len(checked)


def test_the_owner_logs_in_while_an_attacker_hammers_the_account(core, alice, monkeypatch):
    checked = _slow_checks(monkeypatch)
    attack = [("alice", f"guess number {i}", f"198.51.100.{i % 4}") for i in range(39)]
    outcomes = _at_once([*attack, ("alice", PASSWORD, "203.0.113.5")], core)
    assert isinstance(outcomes[-1], accounts.Login) and outcomes[-1].actor == alice
    assert len(checked) <= core.settings.throttle_account_failures + 4 + 1


def test_addresses_of_one_ipv6_network_count_as_one_client(core, alice):
    with_settings(core, throttle_client_failures=3)
    for attempt in range(3):
        with pytest.raises(accounts.LoginFailed):
            accounts.login(core, f"guess{attempt}", "wrong password!", f"2001:db8:1:2::{attempt}")
    with pytest.raises(accounts.Throttled):
        accounts.login(core, "alice", PASSWORD, "2001:db8:1:2:ffff::9")
    assert accounts.login(core, "alice", PASSWORD, "2001:db8:1:3::1").actor == alice


def test_one_address_guessing_many_names_is_throttled(core, alice):
    with_settings(core, throttle_client_failures=4)
    for attempt in range(4):
        with pytest.raises(accounts.LoginFailed):
            accounts.login(core, f"guess{attempt}", "wrong password!", "198.51.100.7")
    with pytest.raises(accounts.Throttled):
        accounts.login(core, "alice", PASSWORD, "198.51.100.7")
    assert accounts.login(core, "alice", PASSWORD, "198.51.100.8").actor == alice


def test_session_ends_after_idle_time(core, clock, alice):
    token = accounts.login(core, "alice", PASSWORD, "c").token
    clock.advance(core.settings.session_idle_seconds - 1)
    assert accounts.validate_session(core, token) == alice  # use refreshes it
    clock.advance(core.settings.session_idle_seconds - 1)
    assert accounts.validate_session(core, token) == alice
    clock.advance(core.settings.session_idle_seconds + 1)
    assert accounts.validate_session(core, token) is None
    assert accounts.session_count(core, alice.user_id) == 0


def test_session_ends_at_its_absolute_expiry_even_when_used(core, clock, alice):
    with_settings(core, session_max_seconds=5 * core.settings.session_idle_seconds)
    token = accounts.login(core, "alice", PASSWORD, "c").token
    step = core.settings.session_idle_seconds // 2
    while clock.now + step < 1_800_000_000 + core.settings.session_max_seconds:
        clock.advance(step)
        assert accounts.validate_session(core, token) == alice
    clock.advance(step)
    assert accounts.validate_session(core, token) is None


def test_logout_really_ends_the_session(core, alice):
    token = accounts.login(core, "alice", PASSWORD, "c").token
    accounts.logout(core, token)
    assert accounts.validate_session(core, token) is None
    assert accounts.validate_session(core, "made-up-token") is None


def test_password_change_ends_other_sessions_but_keeps_this_one(core, alice):
    here = accounts.login(core, "alice", PASSWORD, "laptop").token
    elsewhere = accounts.login(core, "alice", PASSWORD, "phone").token
    accounts.change_password(core, alice, PASSWORD, "a brand new passphrase", keep_token=here)
    assert accounts.validate_session(core, here) == alice
    assert accounts.validate_session(core, elsewhere) is None
    with pytest.raises(accounts.LoginFailed):
        accounts.login(core, "alice", PASSWORD, "laptop")
    assert accounts.login(core, "alice", "a brand new passphrase", "laptop").actor == alice


def test_password_change_needs_the_current_password(core, alice):
    with pytest.raises(Forbidden):
        accounts.change_password(core, alice, "not my password", "a brand new passphrase",
                                 keep_token=None)


@pytest.mark.parametrize("password", ["short", "alice", ""])
def test_weak_passwords_are_refused(core, admin, password):
    with pytest.raises(accounts.InvalidInput):
        accounts.create_user(core, admin, "carol", password)


def test_disabling_a_user_ends_their_sessions_at_once(core, admin, alice):
    token = accounts.login(core, "alice", PASSWORD, "c").token
    accounts.set_disabled(core, admin, alice.user_id, True)
    assert accounts.validate_session(core, token) is None
    with core.db.connect() as conn, pytest.raises(Forbidden):
        authz.current(conn, alice)  # an Actor held in a page's state is worth nothing now


def test_only_an_admin_manages_users(core, alice, bob):
    with pytest.raises(Forbidden):
        accounts.create_user(core, alice, "carol", "carol's passphrase")
    with pytest.raises(Forbidden):
        accounts.set_disabled(core, alice, bob.user_id, True)
    with pytest.raises(Forbidden):
        accounts.list_users(core, alice)


def test_bootstrap_admin_with_a_generated_password_written_once_0600(core, capsys):
    created = accounts.ensure_bootstrap_admin(core)
    assert created is not None and created.password_file is not None
    info = created.password_file.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600
    password = created.password_file.read_text().strip()
    assert accounts.login(core, "admin", password, "c").actor.role == "admin"
    assert accounts.ensure_bootstrap_admin(core) is None  # users exist: nothing happens


def test_the_generated_password_file_goes_when_the_admin_changes_the_password(core):
    created = accounts.ensure_bootstrap_admin(core)
    password = created.password_file.read_text().strip()
    admin = accounts.login(core, "admin", password, "c").actor
    accounts.change_password(core, admin, password, "the admin's own passphrase", None)
    assert not created.password_file.exists()
    # a later start does not write it again
    assert accounts.ensure_bootstrap_admin(core) is None
    assert not created.password_file.exists()


def test_a_password_reset_of_the_bootstrap_admin_removes_the_file_too(core, admin):
    created = accounts.ensure_bootstrap_admin(core)
    assert created is None  # `admin` (boss) came first: no bootstrap admin, no file
    with core.db.connect() as conn:
        conn.execute("DELETE FROM users WHERE id = ?", (admin.user_id,))
    created = accounts.ensure_bootstrap_admin(core)
    other = make_user(core, "second-admin", "admin")
    with core.db.connect() as conn:
        bootstrap_id = conn.execute("SELECT id FROM users WHERE name = 'admin'").fetchone()[0]
    accounts.reset_password(core, other, bootstrap_id, "set by another admin")
    assert not created.password_file.exists()


def test_a_file_left_from_before_a_password_change_is_removed_at_the_next_start(core, clock):
    created = accounts.ensure_bootstrap_admin(core)
    clock.advance(60)
    with core.db.connect() as conn:  # changed by a UI that did not remove the file yet
        conn.execute("UPDATE users SET password_changed_at = ? WHERE name = 'admin'",
                     (clock.now,))
    assert accounts.ensure_bootstrap_admin(core) is None
    assert not created.password_file.exists()


def test_a_lost_database_does_not_bring_back_the_old_admin_password(core):
    old = accounts.ensure_bootstrap_admin(core).password_file.read_text().strip()
    for path in core.settings.state_dir.glob("left4me-ui.sqlite3*"):
        path.unlink()  # the database is lost; the old password file is still there
    fresh = boot.open_core(core.settings)
    created = accounts.ensure_bootstrap_admin(fresh)
    new = created.password_file.read_text().strip()
    assert new != old and stat.S_IMODE(created.password_file.stat().st_mode) == 0o600
    with pytest.raises(accounts.LoginFailed):
        accounts.login(fresh, "admin", old, "c")
    assert accounts.login(fresh, "admin", new, "c").actor.is_admin


def test_bootstrap_admin_password_from_the_environment_is_not_inherited(core, monkeypatch):
    monkeypatch.setenv("LEFT4ME_UI_BOOTSTRAP_PASSWORD", "operator chosen secret")
    created = accounts.ensure_bootstrap_admin(core)
    assert created.password_file is None
    assert "LEFT4ME_UI_BOOTSTRAP_PASSWORD" not in os.environ
    assert not core.settings.generated_admin_password_file.exists()
    assert accounts.login(core, "admin", "operator chosen secret", "c").actor.is_admin


def test_bootstrap_admin_password_from_a_file(core, tmp_path):
    given = tmp_path / "admin-password"
    given.write_text("from a file, by the operator\n")
    with_settings(core, bootstrap_password_file=given)
    accounts.ensure_bootstrap_admin(core)
    assert accounts.login(core, "admin", "from a file, by the operator", "c").actor.is_admin


@pytest.mark.parametrize("problem", ["missing", "world-readable", "too short"])
def test_the_ui_refuses_to_start_without_a_safe_secret(config, problem):
    if problem == "missing":
        config.secret_file.unlink()
    elif problem == "world-readable":
        config.secret_file.chmod(0o644)
    else:
        config.secret_file.write_text("short\n")
    with pytest.raises(settings.SecretError) as refused:
        boot.open_core(config)
    assert str(config.secret_file) in str(refused.value)
    assert not config.db_path.exists()  # nothing was created


def test_database_and_its_wal_sidecars_are_private(core, alice):
    accounts.login(core, "alice", PASSWORD, "c")
    with core.db.connect() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        paths = [core.settings.db_path.with_name(core.settings.db_path.name + suffix)
                 for suffix in ("", "-wal", "-shm")]
        for path in paths:
            info = path.stat()
            assert stat.S_IMODE(info.st_mode) == 0o600, path
            assert info.st_uid == os.geteuid()
    assert stat.S_IMODE(core.settings.state_dir.stat().st_mode) == 0o700


def test_a_forged_actor_gets_its_stored_role_not_the_claimed_one(core, alice):
    forged = authz.Actor(alice.user_id, "alice", "admin")
    with pytest.raises(Forbidden):
        accounts.list_users(core, forged)


def test_a_password_typed_as_the_name_is_not_kept_in_clear(core, alice):
    with pytest.raises(accounts.LoginFailed):
        accounts.login(core, "my secret passphrase", "whatever", "c")
    with core.db.connect() as conn:
        dump = "\n".join(conn.iterdump())
    assert "my secret passphrase" not in dump


def test_a_page_checks_its_session_while_a_job_holds_the_write_lock(core, clock, alice):
    # Every rerun of every open page checks its session: as a writer it queued behind the
    # job worker's writes (and the other pages'), "database is locked" under load.
    token = accounts.login(core, "alice", PASSWORD, "c").token
    core.db.busy_timeout_ms = 200
    with core.db.connect() as writer:  # BEGIN IMMEDIATE: what a job's bookkeeping holds
        writer.execute("UPDATE users SET role = role WHERE name = 'alice'")
        clock.advance(accounts.SESSION_TOUCH_SECONDS - 1)
        assert accounts.validate_session(core, token) == alice


def test_use_refreshes_a_session_once_a_minute_not_at_every_look(core, clock, alice):
    token = accounts.login(core, "alice", PASSWORD, "c").token

    def last_seen() -> int:
        with core.db.connect(write=False) as conn:
            return conn.execute("SELECT last_seen_at FROM sessions").fetchone()[0]

    first = last_seen()
    clock.advance(accounts.SESSION_TOUCH_SECONDS - 1)
    assert accounts.validate_session(core, token) == alice
    assert last_seen() == first
    clock.advance(1)
    assert accounts.validate_session(core, token) == alice
    assert last_seen() == clock.now


def test_a_read_transaction_refuses_a_write(core, alice):
    with pytest.raises(sqlite3.OperationalError, match="readonly"), \
            core.db.connect(write=False) as conn:
        conn.execute("DELETE FROM users")
    with core.db.connect(write=False) as conn:
        assert conn.execute("SELECT COUNT(*) FROM users").fetchone()[0] > 0
