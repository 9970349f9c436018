"""The knowledge base the agent searches: sample campus documents, their full-text search,
and the routing of a question to the folders worth searching."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction

from campus_core.chat.models import DocumentChunk

SAMPLE_DOCUMENTS: list[tuple[str, str, str]] = [
    (
        "registrar",
        "Course registration deadlines",
        "Registration for the spring semester opens on November 10. The add/drop deadline is "
        "the end of the second week of classes. Late registration requires the approval of the "
        "registrar and a late fee of 50 dollars.",
    ),
    (
        "registrar",
        "Transcripts",
        "Official transcripts are requested through the student portal. Electronic transcripts "
        "are sent within one business day; printed transcripts take five business days.",
    ),
    (
        "financial_aid",
        "Scholarships and grants",
        "Merit scholarships are renewed each year for students who keep a GPA of 3.0 or more. "
        "The FAFSA priority deadline is March 1. Grants do not need to be repaid.",
    ),
    (
        "financial_aid",
        "Tuition payment plans",
        "Tuition can be paid in four monthly instalments through the bursar's payment plan. "
        "Enrolment in the plan costs 35 dollars per semester.",
    ),
    (
        "housing",
        "Residence hall move-in",
        "Move-in for residence halls begins the Saturday before classes start. Students must "
        "bring a photo ID and their housing assignment letter.",
    ),
    (
        "housing",
        "Housing office hours",
        "The housing office in Maple Hall is open Monday to Friday from 9 am to 5 pm and on "
        "Saturday from 10 am to 2 pm during move-in weekend.",
    ),
    (
        "library",
        "Library hours",
        "The main library is open from 7 am to midnight on weekdays and from 10 am to 10 pm "
        "on weekends. During finals week it stays open 24 hours.",
    ),
    (
        "library",
        "Borrowing books",
        "Undergraduates may borrow up to 30 books for four weeks. Renewals can be made online "
        "twice unless another student has placed a hold.",
    ),
    (
        "it",
        "Wi-Fi and accounts",
        "Connect to the campus Wi-Fi network with your student ID and password. Password resets "
        "are done at the IT help desk in the library basement or online.",
    ),
    (
        "dining",
        "Meal plans",
        "First-year students living on campus must choose a meal plan of at least 14 meals per "
        "week. Dining dollars roll over from fall to spring but not to the next year.",
    ),
]

FOLDERS = sorted({folder for folder, _, _ in SAMPLE_DOCUMENTS})


@dataclass(frozen=True)
class SearchHit:
    folder: str
    title: str
    content: str
    rank: float


def route_folders(question: str) -> list[str]:
    """Knowledge routing: the document folders whose topic words appear in the question."""
    words = {w.strip(".,?!").lower() for w in question.split()}
    topics = {
        "registrar": {"registration", "register", "transcript", "transcripts", "deadline", "drop"},
        "financial_aid": {"scholarship", "scholarships", "grant", "fafsa", "tuition", "aid"},
        "housing": {"housing", "dorm", "residence", "move-in", "hall"},
        "library": {"library", "book", "books", "borrow", "borrowing"},
        "it": {"wi-fi", "wifi", "password", "account", "internet"},
        "dining": {"meal", "meals", "dining", "food"},
    }
    return [folder for folder, keys in topics.items() if words & keys]


def refresh_search_vectors() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE chat_documentchunk SET search_vector = "
            "to_tsvector('english', title || ' ' || content) WHERE search_vector IS NULL"
        )


def seed_documents() -> int:
    """Write the sample documents once; returns how many chunks were created."""
    with transaction.atomic():
        if DocumentChunk.objects.exists():
            return 0
        DocumentChunk.objects.bulk_create(
            DocumentChunk(folder=f, title=t, content=c) for f, t, c in SAMPLE_DOCUMENTS
        )
        refresh_search_vectors()
    return len(SAMPLE_DOCUMENTS)


def search(query: str, folders: list[str] | None = None, limit: int = 3) -> list[SearchHit]:
    """Full-text search over the knowledge base (a real SQL query, so a real SELECT span)."""
    # Any of the question's words may match (OR of its lexemes); rank orders the hits.
    sql = (
        "SELECT folder, title, content, ts_rank(search_vector, q.tsq) AS rank "
        "FROM chat_documentchunk, (SELECT NULLIF(replace("
        "plainto_tsquery('english', %s)::text, '&', '|'), '')::tsquery AS tsq) AS q "
        "WHERE search_vector @@ q.tsq"
    )
    params: list[Any] = [query]
    if folders:
        sql += " AND folder = ANY(%s)"
        params.append(folders)
    sql += " ORDER BY rank DESC, id LIMIT %s"
    params.append(limit)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [SearchHit(*row) for row in cursor.fetchall()]
