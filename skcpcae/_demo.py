"""``make demo`` / ``skcpcae demo``: the main job on real images (ELPV)."""

from ._benchmark import main as _bench_main


def main(argv=None):
    """The paper's CPCAE pipeline, the deep-feature comparator and the best preset on ELPV."""
    print("skcpcae demo: ELPV solar cells (train on half of the good cells, test on the other "
          "half + defective cells)")
    return _bench_main(argv if argv is not None else [], prog="skcpcae demo",
                       default_methods=["deep-feature", "cpcae-paper", "best"], section="demo")
