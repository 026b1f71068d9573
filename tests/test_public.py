"""What `import sharens` offers a researcher: SE in their own code, and a table run from Python."""

import json

import pytest
import torch

import sharens
from benchmarks import get_table


def test_the_readme_example_runs_from_the_top_level_names():
    x, y = torch.randn(8, 16), torch.randint(0, 26, (8,))
    se = sharens.SharingEnsemble(sharens.build_backbone("pyramid_dnn", 16, first_width=32, depth=8), num_classes=26,
                                 heads_per_tap=5)
    logits = se(x)
    assert logits.shape == (8, 20, 26) and se.loss(logits, y).ndim == 0
    scores = sharens.vote(logits)  # no labels: a vote that does not read them takes none
    assert torch.allclose(scores, sharens.vote(logits, "soft", sharens.Ballot(targets=y)))
    assert torch.allclose(scores.sum(-1), torch.ones(8))
    assert sharens.vote(logits, "hard").shape == (8, 26)


def test_a_vote_that_needs_what_its_ballot_lacks_says_so():
    logits = torch.randn(4, 3, 2)
    with pytest.raises(ValueError, match="Ballot\\(targets="):
        sharens.vote(logits, "best_head")
    with pytest.raises(ValueError, match="needs what its ballot lacks"):
        sharens.vote(logits, "accuracy_weighted")
    with pytest.raises(ValueError, match="unknown vote"):
        sharens.vote(logits, "no such rule")


def test_run_runs_a_table_from_python_and_writes_its_report(data_root, tmp_path):
    done = sharens.run(get_table("table5_semg"), "smoke", seeds=1, rows=["SVM (rbf)"], out=tmp_path,
                       data_root=data_root)
    assert not done.errors and [r["model"] for r in done.records] == ["SVM (rbf)"]
    assert json.loads((tmp_path / "table5_semg.json").read_text())["profile"] == "smoke"
