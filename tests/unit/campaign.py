"""A typical campaign space's forms, for domain tests (ids as a Qomon space would have)."""

from __future__ import annotations

from qomon_sync.domain.forms import Form, FormCatalog


def _form(fid: int, kind: str, label: str, section: str, values: list[tuple[str, str]]) -> Form:
    refs = [
        {"id": fid * 10 + i, "form_id": fid, "value": v, "label": lbl}
        for i, (v, lbl) in enumerate(values)
    ]
    return Form.model_validate(
        {"id": fid, "type": kind, "label": label, "section": section, "refvalues": refs}
    )


def _free(fid: int, kind: str, label: str, section: str, **bounds: float) -> Form:
    ref = {"id": fid * 10, "form_id": fid, "label": label, **bounds}
    return Form.model_validate(
        {"id": fid, "type": kind, "label": label, "section": section, "refvalues": [ref]}
    )


CONSENT = _form(
    1,
    "checkbox",
    "Consents",
    "consent",
    [
        ("consent_email", "E-mail"),
        ("consent_sms", "SMS"),
        ("consent_post", "Post"),
        ("refuse_all", "Refuses all"),
    ],
)
SUPPORT = _form(
    2,
    "radio",
    "Level of support",
    "level_of_support",
    [
        ("strong", "Strong supporter"),
        ("leaning", "Leaning"),
        ("undecided", "Undecided"),
        ("against", "Against"),
    ],
)
TOPICS = _form(
    3,
    "checkbox",
    "Topics",
    "survey",
    [("housing", "Housing"), ("transport", "Transport"), ("schools", "Schools")],
)
COMMENT = _free(4, "text", "Comment", "survey")
HOUSEHOLD = _free(5, "numeric", "Household size", "survey", min=1, max=20)
MEETING = _free(6, "date", "Meeting date", "survey")
TIER = _form(
    7, "select", "Membership tier", "custom_fields", [("gold", "Gold"), ("silver", "Silver")]
)
MEMBER_NO = _free(8, "text", "Member number", "custom_fields")
AGE = _free(9, "integer", "Age", "custom_fields", min=0, max=130)
RATING = _form(10, "stars", "Rating", "survey", [("5", "Five")])
DUP_A = _free(11, "text", "Notes from the door", "survey")
DUP_B = _free(12, "text", "notes from the door", "survey")

FORMS = [
    CONSENT,
    SUPPORT,
    TOPICS,
    COMMENT,
    HOUSEHOLD,
    MEETING,
    TIER,
    MEMBER_NO,
    AGE,
    RATING,
    DUP_A,
    DUP_B,
]
CATALOG = FormCatalog(FORMS)
ANSWERABLE = [CONSENT, SUPPORT, TOPICS, COMMENT, HOUSEHOLD, MEETING, TIER, MEMBER_NO, AGE]
