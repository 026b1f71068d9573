"""The claims a table is judged on: SE against each alternative it is compared with, one registry.

A claim compares a pair's SE row with another row of the same pair, on the same seeds and test rows
(paired). Its direction (does SE beat it?) is Holm-corrected across every claim of a table; its magnitude
is judged against the paper's gain where the paper reports the alternative's number. A new comparison is
one entry here; the document, the report and the site show every entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from sharens.judge import stats


@dataclass(frozen=True)
class Claim:
    name: str
    title: str  # how the report and the site head it
    against: str  # the variant of the pair SE is compared with (see benchmark.VARIANTS)
    short: str  # what the report calls that row
    description: str
    paper: bool = False  # the paper's own claim: its direction is "reproduced" or not; ours "holds" or not

    def direction(self, verdict: str) -> str:
        """A direction verdict in this claim's words: a claim the paper did not make is not "reproduced"."""
        return verdict if self.paper else OUR_WORDS.get(verdict, verdict)


CLAIMS = {claim.name: claim for claim in (
    Claim("se_beats_baseline", "SE beats its baseline", "baseline", "baseline",
          "the paper's claim: the same backbone with one head after its last layer", paper=True),
    Claim("se_beats_dsn", "SE beats deep supervision (DSN)", "dsn", "DSN",
          "one head on every tap, the same summed loss, predicting by its last head; it tells SE's vote over "
          "its heads from the supervision of its hidden layers"),
    Claim("se_beats_snapshot", "SE beats a snapshot ensemble", "snapshot", "snapshots",
          "the baseline trained once, its epoch cap split into cosine cycles, the end-of-cycle snapshots "
          "soft-voted (Huang et al. 2017): an ensemble for the cost of one run"),
)}
# a claim of ours: SE's gain is above zero (holds), below it (reversed), or neither can be told
OUR_WORDS = {stats.REPRODUCED: "holds", stats.NOT_REPRODUCED: "reversed"}
DEFAULT = "se_beats_baseline"  # what a claim of a document written before claims had kinds compared


def kind(claim: dict) -> Claim:
    """The registered comparison a document's claim made."""
    return CLAIMS[claim.get("claim", DEFAULT)]
