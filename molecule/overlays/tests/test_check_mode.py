"""A converged host is left alone: a check-mode run of site.yml reports no change."""

from testhosts.converge import assert_check_mode_changes_nothing


def test_check_mode_on_converged_host_reports_no_change(host):
    assert_check_mode_changes_nothing(host.backend.get_hostname())
