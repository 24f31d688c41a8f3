"""A defense written in a user's own code: registered with the built-ins' decorator, its numbers
put in `ctx.findings`, stored with the run."""

from backdoorlab.defenses import DEFENSES, CleanRepair, DefenseConfig, register_defense
from backdoorlab.experiment import run


class ShrinkConfig(DefenseConfig):
    factor: float = 0.5


def test_a_users_defense_runs_and_its_findings_are_stored(tiny_config):
    @register_defense("test_shrink", config=ShrinkConfig)
    class Shrink(CleanRepair):  # the README's example, with one more finding
        """Scales every weight by `factor`."""

        def fix(self, model, clean, ctx):
            for p in model.parameters():
                p.data.mul_(self.cfg.factor)
            ctx.findings["clean_images"] = len(clean)
            ctx.findings["shrunk_tensors"] = len(list(model.parameters()))
            return model

    tiny_config["defense"] = {"name": "test_shrink", "factor": 0.9, "clean_share": 0.25}
    r = run(tiny_config, save=False, progress=False, cache=False)
    tensors = len(list(r.model.parameters()))
    assert r.metrics.defense == {"clean_images": 64, "shrunk_tensors": tensors}  # 25% of 256
    assert r.metrics.before is not None  # measured before the repair, as for a built-in
    again = run(tiny_config, save=False, progress=False, cache=False)
    assert again.metrics.defense == r.metrics.defense  # one run's findings, not two
    assert "test_shrink" in DEFENSES  # (conftest removes it after the test)
