"""The sentences the dataset card and the HTML report say about one batch, from its facts
(prefpipe.core.batch_facts) and its dataset versions (prefpipe.core.dataset_versions).

Every sentence is made of the batch's own counts: a judge that was not asked is not mentioned, an
order that was not judged is not claimed, a route no pair took is left out. Plain text (no markdown
or HTML), so the card and the page show the same words.
"""

from __future__ import annotations

from collections.abc import Mapping

from prefpipe.core.batch_config import NO_JUDGE
from prefpipe.core.batch_facts import BatchFacts, JudgeFacts
from prefpipe.core.dataset_versions import DatasetVersion, Publication

REASONS: Mapping[str, str] = {
    "confident": "a confident verdict",
    "random_spot_check": "drawn at random for a spot check",
    "confident; spot check over budget": "a confident verdict whose spot check was over budget",
    "low_confidence": "a verdict below the acceptance confidence",
    "unparsed": "no readable verdict",
    "judge_failed": "a failed judge call",
    "position_inconsistent": "a verdict that changed when A and B swapped places",
    "no_label": "no verdict on the scale",
    "no_confidence": "a verdict without a confidence",
    "no_ai_label": "no AI verdict",
    "spot_check_disagreement": "people disagreeing with the AI on a spot check",
}
"""Routing reasons (prefpipe.core.routing) as words; a reason not listed is shown as it is."""

METHODS: Mapping[str, str] = {"majority": "majority vote", "weighted": "reliability-weighted vote", "dawid_skene": "Dawid-Skene",
                              "expert": "an expert's label", "ai": "the AI label"}


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


def _listing(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _versions(counts: Mapping[str, int], limit: int = 4) -> str:
    shown = [f"{v} ({n:,})" for v, n in list(counts.items())[:limit]]
    more = len(counts) - limit
    return _listing(shown + ([f"{more} more"] if more > 0 else []))


def _orders(judge: JudgeFacts) -> str:
    if judge.both_orders and not judge.one_order:
        return "in both orders (A first, then B first)"
    if judge.one_order and not judge.both_orders:
        return "in one order only (no verdict with A and B swapped), so position consistency could not be checked"
    if judge.both_orders:
        return f"{judge.both_orders:,} in both orders and {judge.one_order:,} in one"
    return "with no readable verdict in either order"


def _judge(judge: JudgeFacts, live_pairs: int) -> str:
    problems = [f"{judge.unparsed:,} unreadable"] if judge.unparsed else []
    problems += [f"{judge.inconsistent:,} position-inconsistent"] if judge.inconsistent else []
    problems += [_n(judge.failed, "failed call")] if judge.failed else []
    quality = f"{judge.usable:,} of them usable" + (f" ({_listing(problems)})" if problems else "")
    every = "every pair" if judge.verdicts == live_pairs else _n(judge.verdicts, "pair")
    if judge.imported:
        return (f"{_n(judge.verdicts, 'verdict')} of {judge.name} were imported from the batch folder (ai_labels.jsonl), "
                f"judged elsewhere {_orders(judge)}; {quality}.")
    prompt = f" with judge prompt {_listing(list(judge.prompt_versions))}" if judge.prompt_versions else ""
    return f"prefpipe asked {judge.name}{prompt} to judge {every}, {_orders(judge)}: {_n(judge.verdicts, 'verdict')}, {quality}."


def _routes(facts: BatchFacts) -> str:
    r, why = facts.routes, facts.reasons

    def because(route: str) -> str:
        reasons = [f"{n:,} with {REASONS.get(reason, reason)}" for reason, n in why.get(route, {}).items()]
        return f" ({_listing(reasons)})" if reasons else ""

    parts = []
    if r.get("accepted"):
        parts.append(f"{_n(r['accepted'], 'pair')} accepted on the AI label")
    if r.get("spot_check"):
        parts.append(f"{_n(r['spot_check'], 'pair')} accepted and spot-checked by people")
    if r.get("human"):
        parts.append(f"{_n(r['human'], 'pair')} sent to people{because('human')}")
    if r.get("expert"):
        parts.append(f"{_n(r['expert'], 'pair')} sent to an expert{because('expert')}")
    if r.get("over_budget"):
        parts.append(f"{_n(r['over_budget'], 'pair')} left over the human budget (their AI label stands where they have one)")
    if not parts:
        return "No pair was routed."
    total = sum(r.values())
    if r.get("human") == total and total:
        return f"Every pair went to people{because('human')}."
    return "Routing: " + _listing(parts) + "."


def _people(facts: BatchFacts) -> list[str]:
    if not facts.sent_to_people and not facts.human_labels:
        return ["No pair was sent to people and no human label was given."]
    out = []
    if facts.sent_to_people:
        per = " or ".join(f"{n}" for n in facts.labels_per_pair) or "an unknown number of"
        label = "label" if facts.labels_per_pair == (1,) else "labels"
        expert = " (an expert gives one)" if facts.routes.get("expert") else ""
        out.append(f"People were asked for {per} {label} a pair{expert}: {facts.labels_wanted:,} wanted, "
                   f"{facts.labels_received:,} received on those pairs.")
    app = facts.human_labels - facts.imported_human_labels
    where = _listing([part for part in (f"{facts.imported_human_labels:,} imported from the batch folder" if facts.imported_human_labels else "",
                                        f"{app:,} made in prefpipe's annotation app" if app else "") if part] or ["none"])
    skipped = f", {facts.skipped:,} skipped" if facts.skipped else ""
    out.append(f"{_n(facts.human_labels, 'human label')} in all ({where}{skipped}) from {_n(facts.annotators, 'annotator')}.")
    gold = (f"{_n(facts.gold_answers, 'gold answer')} scored annotators against known answers"
            if facts.gold_answers else "No gold question was answered in this batch")
    left = (f"{facts.annotators_left_out:,} of {facts.annotators:,} annotators were left out as unreliable or gold-flagged"
            if facts.annotators_left_out else "no annotator was left out by the reliability filter")
    out.append(f"{gold}; {left}.")
    return out


def _final(facts: BatchFacts) -> str:
    by = facts.final_by_source
    parts = []
    if by.get("human"):
        methods = [METHODS.get(m, m) for m in facts.final_by_method if m not in ("ai", "expert")]
        parts.append(f"{by['human']:,} by people ({_listing(methods) if methods else 'aggregated'})")
    if by.get("ai"):
        parts.append(f"{by['ai']:,} on the AI label")
    if by.get("expert"):
        parts.append(f"{by['expert']:,} by an expert")
    others = {k: v for k, v in by.items() if k not in ("human", "ai", "expert")}
    parts += [f"{v:,} from {k}" for k, v in others.items()]
    head = f"{_n(facts.final, 'pair')} {'is' if facts.final == 1 else 'are'} final" + (f": {_listing(parts)}" if parts else "")
    return head + ". " + waiting_sentence(facts)


def waiting_sentence(facts: BatchFacts) -> str:
    if not facts.waiting:
        return "No pair waits for people."
    some = f" ({facts.waiting_with_labels:,} of them with some of their labels)" if facts.waiting_with_labels else ""
    return f"{_n(facts.waiting, 'pair')} still {'waits' if facts.waiting == 1 else 'wait'} for people{some}."


def _judges(facts: BatchFacts) -> list[str]:
    if not facts.judges:
        if facts.judge_setting == NO_JUDGE:
            return ['No AI judge (batch.json says "judge": "none").']
        return ["No AI judge gave a verdict on this batch."]
    out = [_judge(j, facts.live_pairs) for j in facts.judges]
    if facts.judge_setting == NO_JUDGE:
        out.insert(0, 'prefpipe asked no AI judge (batch.json says "judge": "none").')
    elif all(j.imported for j in facts.judges):
        out[0] = "prefpipe asked no AI judge: " + out[0]
    return out


def how_it_was_made(facts: BatchFacts, *, rows: int | None = None) -> list[str]:
    """The batch's story, one paragraph a list item: pairs, judges, routing, people, final labels,
    the dataset's rows (when `rows` is given) and the versions."""
    dropped = f" ({facts.dropped:,} more dropped as degenerate)" if facts.dropped else ""
    out = [f"{_n(facts.live_pairs, 'response pair')}{dropped}.", *_judges(facts), _routes(facts), *_people(facts), _final(facts)]
    if rows is not None:
        out.append(f"{_n(rows, 'final label')} carry a preference and are the dataset's rows; "
                   f"{_n(facts.ties, 'tie')} (A=B) carry none and are left out.")
    versions = []
    if facts.ai_guideline_versions:
        versions.append(f"AI verdicts under guideline version {_versions(facts.ai_guideline_versions)}")
    if facts.human_guideline_versions:
        versions.append(f"human labels under {_versions(facts.human_guideline_versions)}")
    if versions:
        prompts = (f"; prefpipe's judge prompt version {_listing(list(facts.judge_prompt_versions))}" if facts.judge_prompt_versions
                   else "; no prefpipe judge prompt" if facts.judges else "")
        out.append("Labels were made with " + _listing(versions) + prompts + ".")
    return out


def why_nothing_published(facts: BatchFacts) -> str:
    """Why a publish with no row writes no file."""
    if facts.waiting:
        return f"no pair is complete yet: {facts.waiting:,} waiting for people"
    if facts.final and facts.ties == facts.final:
        return f"every final label is a tie ({facts.ties:,}): nothing to train on"
    if not facts.live_pairs:
        return "the batch has no pair"
    return "no pair has a final label"


def change_sentence(version: DatasetVersion) -> str:
    """What changed since the version before, in words."""
    change = version.change
    if version.previous is None:
        return "the batch's first recorded version"
    if change is None:
        return f"what changed since version {version.previous} is not known (its files are gone)"
    parts = [f"{change.added:,} pair(s) added", f"{change.removed:,} removed", f"{change.labels_changed:,} with a changed label"]
    if change.otherwise_changed:
        parts.append(f"{change.otherwise_changed:,} otherwise changed (text, margin, source or versions)")
    return f"since version {change.previous}: " + ", ".join(parts)


def version_sentences(publication: Publication) -> list[str]:
    """What the card and report say of the version a publish made (or did not make)."""
    v = publication.version
    if not publication.new and publication.previous is not None:
        p = publication.previous
        return [f"Version {p.version}, unchanged: the same rows as published at {p.published_at} (run {p.run_id}); no new version recorded."]
    return [f"Version {v.version} (SHA-256 of the rows in pair order), published at {v.published_at} by run {v.run_id}: "
            f"{_n(v.rows, 'row')}, {change_sentence(v)}."]


def left_as_they_were(previous: DatasetVersion | None, files_there: bool) -> str:
    """What happens to the files an earlier publish left, when this one writes none."""
    if previous is not None:
        return f"the files of version {previous.version} (published at {previous.published_at}, {_n(previous.rows, 'row')}) are left as they were"
    if files_there:
        return "the files of an earlier publish (before versions were recorded) are left as they were"
    return "no earlier files"
