"""docs/SECURITY.md prints the roles x actions matrix; it must say what core.authz does, cell for cell."""

from pathlib import Path

from core.authz import ROLE_ACTIONS, Action, Role

DOC = Path(__file__).resolve().parents[2] / "docs" / "SECURITY.md"


def _doc_matrix() -> dict[str, list[str]]:
    text = DOC.read_text(encoding="utf-8")
    block = text.split("<!-- matrix:start -->")[1].split("<!-- matrix:end -->")[0]
    rows = [line.strip("|").split("|") for line in block.strip().splitlines()[2:]]
    return {cells[0].strip().strip("`"): [c.strip() for c in cells[1:]] for cells in rows}


def test_the_security_page_matrix_is_the_code_matrix():
    documented = _doc_matrix()
    assert set(documented) == {a.value for a in Action}
    for action in Action:
        annotator, lead, ml_engineer, reviewer, superuser = (cell == "yes" for cell in documented[action.value])
        assert annotator == (action in ROLE_ACTIONS[Role.ANNOTATOR]), action
        assert lead == (action in ROLE_ACTIONS[Role.LEAD]), action
        assert ml_engineer == (action in ROLE_ACTIONS[Role.ML_ENGINEER]), action
        assert reviewer == (action in ROLE_ACTIONS[Role.REVIEWER]), action
        assert superuser == (action != Action.ANNOTATE), action
