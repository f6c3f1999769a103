from bastion.robustness.reference import STEPS, ReferenceSetup, build_reference


def test_the_reference_table_has_every_row():
    """A tiny setup still produces every model, detector and smoothing row."""
    steps = []
    setup = ReferenceSetup(
        "digits", linf=0.1, l2=0.5, epochs=1, samples=10, certified=5, effort=0.05
    )
    table = build_reference(setup, on_step=steps.append).to_markdown()
    for row in (
        "undefended",
        "PGD-AT",
        "FGSM-RS",
        "TRADES",
        "distilled",
        "naive gradients",
        "BPDA",
        "PGD-20",
        "adaptive",
        "σ = 0.25",
        "σ = 0.5",
    ):
        assert row in table, row
    assert "randomized smoothing" in table and len(steps) == STEPS
