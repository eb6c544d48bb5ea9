"""Write the bundled demo session to pipeline/demo/ (deterministic: same files on every run).

A scripted CBT homework review (therapist: flite voice slt, client: rms) of about two and a half minutes
with: backchannels, a long pause, a successful interruption (the client cuts the therapist off), an
unsuccessful one (the client talks through), a terminal overlap, a client rupture
(withdrawal.minimal_response, then confrontation.complaint_about_activities) each followed by a therapist
repair (invites_discussion, acknowledges_contribution), and otherwise collaborative talk.

    .venv/bin/python scripts/make_demo_session.py [--out pipeline/demo]

Outputs: demo.flac, demo.rttm, demo.stm, demo_truth.json, demo_transcript.csv, manifest.csv.
"""

from __future__ import annotations

import argparse
from pathlib import Path


from synth import Line, Part, Script, manifest_csv, render_script, write_session  # noqa: E402

from pipeline.serialize import atomic_write_text  # noqa: E402

T, C = "therapist", "client"
CONSENT_DATE = "2026-11-02"

DEMO_SCRIPT = Script(
    session_id="demo",
    cast=(Part(T, "therapist", "slt"), Part(C, "client", "rms")),
    lines=(
        Line(T, "Hi, it's good to see you again. Before we start, how has your week been since our last session?"),
        Line(C, "It's been okay, I guess. Work was really busy, and I didn't sleep very well on Tuesday or "
                "Wednesday night.", gap=0.7),
        Line(T, "Mm-hmm.", at=2.2),
        Line(T, "I'm sorry the sleep was rough. Last time we agreed that you would try the thought record whenever "
                "you noticed your mood dropping. How did that go?", gap=0.6),
        Line(C, "Fine.", gap=0.9, labels=("rupture:withdrawal.minimal_response",)),
        Line(T, "I'm curious what it was actually like for you to sit down with the worksheet. Could you tell me a "
                "bit more about it?", gap=3.6, labels=("repair:invites_discussion",)),
        Line(C, "Honestly, I don't really see the point of those forms. Writing down my thoughts every night felt "
                "like another chore, and it didn't change anything.", gap=0.8,
             labels=("rupture:confrontation.complaint_about_activities",)),
        Line(T, "Right.", at_frac=0.45),
        Line(T, "Thank you for telling me that, I really appreciate it. You're right that the forms should feel "
                "useful to you, not like one more task at the end of a long day.", gap=0.7,
             labels=("repair:acknowledges_contribution",)),
        Line(C, "Yeah. I think the worst part was doing it at midnight, when I was already exhausted.", gap=0.5),
        Line(T, "That makes sense. So the idea of the thought record is to slow things down, so that when a thought "
                "like I'm useless comes up, you can look at the evidence for and against it, and then decide how "
                "much you really believe it.", said_words=31, gap=0.6),
        Line(C, "But that's exactly it. When I'm in that moment, I can't slow down at all.", gap=-0.5),
        Line(T, "That's a really important point. What if we tried a much shorter version, just three questions, "
                "right after dinner instead of at midnight?", gap=0.6),
        Line(C, "I could try that. Actually, there was one evening when I did write something down, after my "
                "manager criticized my report in front of the whole team, and I kept thinking that everyone must "
                "think I'm terrible at my job.", gap=0.7),
        Line(T, "Was that on Thursday?", at=3.4),
        Line(T, "That sounds painful. When you looked at that thought on paper, what did you notice?", gap=0.6),
        Line(C, "I noticed that my manager actually said most of the report was good. It was only one section that "
                "needed more work.", gap=0.8),
        Line(T, "Yeah.", at_frac=0.6),
        Line(T, "That's a great example of finding the evidence against the thought. How much did you believe it "
                "after writing that down?", gap=0.6),
        Line(C, "Maybe half as much as before. It still stung, but it didn't ruin the whole evening.", gap=1.1),
        Line(T, "Would it be okay if we used that evening as a model for the shorter version?", gap=0.7),
        Line(C, "Sure, yes, let's do that.", gap=-0.35),
        Line(T, "Great. So this week, just three questions after dinner. What happened, what went through your "
                "mind, and what is the evidence on the other side. How does that sound?", gap=0.5),
        Line(C, "That sounds doable. Three questions I can manage.", gap=0.8),
        Line(T, "Good. Let's also check in about your sleep next time, since that seems to make everything harder.",
             gap=0.6),
        Line(C, "Okay. Thanks, this actually feels a lot more realistic.", gap=0.6),
    ),
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "pipeline" / "demo")
    args = ap.parse_args(argv)
    rendered = render_script(DEMO_SCRIPT, seed=20261102)
    paths = write_session(args.out, rendered, extra={"generator": "scripts/make_demo_session.py"})
    manifest = manifest_csv([{
        "audio": paths["audio"].name, "session_id": "demo", "consent_recording": "true",
        "consent_analysis": "true", "consent_date": CONSENT_DATE, "num_speakers": 2, "therapist": "",
    }])
    atomic_write_text(args.out / "manifest.csv", manifest, mode=0o644)
    t = rendered.truth
    print(f"wrote {args.out} ({t.duration_s:.1f} s, {len(t.utterances)} utterances, {len(t.events)} events)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
