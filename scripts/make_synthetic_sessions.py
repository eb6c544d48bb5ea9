"""Generate scripted, flite-rendered therapy sessions with exact ground truth for evaluation.

    .venv/bin/python scripts/make_synthetic_sessions.py --out DIR --split dev|heldout --n N --seed S [--stereo]

Every session is 1-2 minutes of a two-person CBT-style conversation and belongs to one scenario (cycled, so
any N >= 9 covers all of them):

    calm                  collaborative talk, ordinary gaps, no events beyond talk time
    interrupt_cut         interruptions that cut the other speaker off (successful)
    interrupt_through     interruptions the other speaker talks through (unsuccessful)
    backchannel           backchannels laid over the other's speech
    long_pause            silences of 3.3-6 s (and near misses of 1.8-2.5 s that are not long pauses)
    imbalanced_therapist  the therapist talks about 75 % of the time
    imbalanced_client     the therapist talks about 15 % of the time
    rupture_repair        client ruptures (3RS subtypes), most repaired by the therapist, some left unresolved
    mixed                 a bit of everything: backchannels, one interruption of each kind, a long pause,
                          a repaired rupture, a terminal overlap

The `dev` and `heldout` splits draw on separate script pools (different topics, wording, backchannel
tokens) so nothing is tuned on heldout; use different seeds for them too. Voices vary per session (the
therapist is not always the female voice).

`--stereo` renders the same sessions with one channel per speaker (close-talk microphones with -20 dB of
crosstalk by default), the recording set-up where the pipeline's exact channel path applies.

`--attenuate ROLE:DB` mixes ROLE (therapist or client) DB decibels below the other speaker (one laptop on
the other person's side of the room; issue 17); `--attenuate none` mixes both at the same level. Without
it each session draws the client's level at -4..+2 dB relative to the therapist. The scripts, voices and
truth do not depend on the option, so `--attenuate client:10` and `--attenuate none` with the same seed
give the same sessions at different levels.

Writes per session `<id>.flac` + `.rttm` + `.stm` + `_truth.json` + `_transcript.csv` (see synth.py), and
one `manifest.csv` (CONTRACT manifest, consent true, `therapist` empty, extra columns split/scenario/seed).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np


from synth import Line, Part, Script, manifest_csv, render_script, write_session  # noqa: E402

from pipeline.serialize import atomic_write_text  # noqa: E402

SCENARIOS = ("calm", "interrupt_cut", "interrupt_through", "backchannel", "long_pause", "imbalanced_therapist",
             "imbalanced_client", "rupture_repair", "mixed")
T, C = "therapist", "client"
WORDS_PER_S = 2.9  # flite speaking rate, for planning only (truth comes from the rendered audio)


@dataclass(frozen=True)
class Pool:
    openings: tuple[tuple[str, str], ...]
    exchanges: tuple[tuple[str, str], ...]  # (therapist, client), collaborative
    therapist_long: tuple[str, ...]  # explanations, at least twenty words
    client_long: tuple[str, ...]  # narratives, at least twenty words
    therapist_short: tuple[str, ...]  # short prompts
    client_short: tuple[str, ...]  # short answers (not backchannels)
    therapist_cut_ins: tuple[str, ...]  # the therapist takes the floor
    client_cut_ins: tuple[str, ...]  # the client takes the floor
    talk_through: tuple[str, ...]  # interjections that get talked over
    backchannels: tuple[str, ...]
    ruptures: tuple[tuple[str, str, str], ...]  # (3RS subtype, therapist prompt, client rupture line)
    repairs: tuple[tuple[str, str], ...]  # (repair subtype, therapist line)
    moving_on: tuple[str, ...]  # therapist carries on without repairing
    reengage: tuple[str, ...]  # client after a repair
    closings: tuple[tuple[str, str], ...]


DEV = Pool(
    openings=(
        ("Hello, come on in. How have things been since we last met?",
         "Pretty busy, to be honest. Work has been a lot, but I'm managing."),
        ("Good to see you. Where would you like to start today?",
         "I think I'd like to talk about the homework, and a bit about my sister."),
        ("Welcome back. How has your mood been over the past week?",
         "Up and down. The start of the week was hard, but the weekend was better."),
    ),
    exchanges=(
        ("What did you notice when you tried the breathing exercise?",
         "It helped a little. My shoulders dropped and I felt less tense afterwards."),
        ("How many evenings did you manage to go for a walk?",
         "Four evenings out of seven, which is more than I expected."),
        ("What went through your mind when your boss asked to see you?",
         "I immediately thought I was going to be fired, even though I had no reason to think that."),
        ("And how strongly did you believe that thought at the time?",
         "Almost completely, maybe ninety percent."),
        ("What would you say to a friend who had that thought?",
         "I would tell them that one meeting doesn't mean anything bad, and that they work hard."),
        ("How did your sleep go after you stopped using your phone in bed?",
         "Better, I think. I fell asleep faster on most nights."),
        ("What was the hardest part of the week for you?",
         "Sunday evening. I started worrying about the week ahead and couldn't switch off."),
        ("What did you do when the worry started?",
         "I wrote it down, like we practiced, and then I watched something light on television."),
        ("How did your sister react when you said no to her?",
         "She was surprised, but she didn't get angry like I thought she would."),
        ("What does that tell you about your prediction?",
         "That maybe I expect the worst too quickly, and people can handle it when I set limits."),
        ("Which activities gave you a sense of achievement this week?",
         "Cleaning out the kitchen cupboards, and finally replying to those emails."),
        ("And which ones gave you some enjoyment?",
         "Cooking dinner with my partner on Saturday. That was really nice."),
        ("How would you rate your mood today, from zero to ten?",
         "Around six, which is better than last month."),
        ("What do you think made the difference?",
         "Probably keeping a routine, and getting outside more often."),
    ),
    therapist_long=(
        "What you're describing is a really common pattern. When we feel low, we tend to do less, and when we do "
        "less, our mood drops even further, so the idea is to gently rebuild activity step by step.",
        "One way to look at this is through the cycle of thoughts, feelings and behaviour. The thought that you "
        "will fail leads to anxiety, the anxiety leads to avoidance, and the avoidance means you never get to "
        "see that the thought might be wrong.",
        "So for this week, I'd suggest we keep the activity schedule simple. Plan one small thing each day that "
        "gives you a sense of achievement, and one small thing that you enjoy, and just notice how your mood "
        "changes afterwards.",
        "It might help to think of worry as something that comes and goes. If we set aside fifteen minutes each "
        "evening as worry time, then during the day you can note the worry down and postpone it until then.",
        "The thought record works best when you fill it in soon after the situation. Write down what happened, "
        "what went through your mind, how strongly you believed it, and then look for evidence on both sides.",
        "Sleep often improves when we keep a regular wake up time, even at weekends. It sounds simple, but it "
        "helps your body clock settle, and the evenings usually become easier after a week or two.",
    ),
    client_long=(
        "Well, on Tuesday I had to give a short presentation at work, and I was dreading it all morning. My "
        "hands were shaking at the start, but after a few minutes I got into it, and a colleague said it was clear.",
        "The weekend was actually quite good. I visited my parents on Saturday, we had lunch in the garden, and "
        "for the first time in a while I didn't spend the whole drive home worrying about Monday.",
        "I tried to go to the gym three times, but I only made it once. The other two days I came home and felt "
        "so tired that I just lay on the sofa, and then I felt guilty about it for the rest of the evening.",
        "My sister called again asking me to look after her kids on Friday. Normally I would just say yes, but "
        "this time I told her I needed the evening for myself, and it felt strange but also kind of good.",
        "I noticed that the worry gets much worse when I'm alone in the evening. During the day I'm busy and I "
        "can push it aside, but once everything is quiet the thoughts just keep going round and round.",
        "When I filled in the thought record after the meeting, I realized I had jumped straight to the worst "
        "conclusion. My manager had only asked a question, and I had turned it into proof that I was failing.",
    ),
    therapist_short=("Go on.", "What happened next?", "How did that feel?", "And then?", "Tell me more about that.",
                     "What did you make of that?", "How was that for you?"),
    client_short=("Okay, that makes sense.", "I can try that.", "Yes, I think so.", "That sounds reasonable.",
                  "I hadn't thought of it that way.", "Fair enough.", "I suppose that's true."),
    therapist_cut_ins=("Can I stop you there for a second? I think that's really important.",
                       "Let's pause on that, because that sounds like the key moment.",
                       "Hold on, I want to make sure I understand what happened there."),
    client_cut_ins=("Oh, that's exactly what happened to me on Tuesday.",
                    "Yes, and that's when I noticed my heart racing.",
                    "Actually, I already tried something like that last month, and it helped a bit."),
    talk_through=("Sorry, can I just", "But what about", "Hang on a", "Can I ask"),
    backchannels=("Mm-hmm.", "Yeah.", "Right.", "Okay.", "Mm-hmm.", "Yeah."),
    ruptures=(
        ("withdrawal.minimal_response", "How did the activity schedule go this week?", "Fine."),
        ("withdrawal.minimal_response", "What came up for you when we talked about your father last time?",
         "Not much."),
        ("withdrawal.denial", "You seemed upset when I mentioned the homework. Did that bother you?",
         "No, no, I'm totally fine, it didn't bother me at all."),
        ("withdrawal.topic_shift", "I wonder how you felt when your partner said that.",
         "Anyway, did I tell you that we're repainting the kitchen this weekend?"),
        ("withdrawal.deferential_appeasing", "Does the plan for this week feel right to you?",
         "Whatever you think is best. You're the expert, so I'll just do what you say."),
        ("withdrawal.abstract_communication", "What was it like for you when the argument started?",
         "I guess people are just like that in general, and relationships are always complicated."),
        ("withdrawal.self_criticism_hopelessness", "What got in the way of trying the exercise?",
         "I just always mess everything up. Nothing is ever going to change for me."),
        ("confrontation.complaint_about_activities", "Did you manage to fill in the worry diary?",
         "Honestly, the diary is pointless. Writing things down every night just makes me feel worse."),
        ("confrontation.complaint_about_therapist", "I'd like to come back to what you said about your mother.",
         "You keep bringing her up. I don't think you're really listening to what I want to talk about."),
        ("confrontation.complaint_about_progress", "How do you feel things are going overall?",
         "We've been doing this for two months and I don't feel any better. I'm not sure this is working."),
        ("confrontation.rejects_intervention", "What if you tried the breathing exercise before the meeting?",
         "That won't work for me. I've told you, breathing exercises don't do anything."),
        ("confrontation.complaint_about_parameters", "Shall we book the next session for the same time?",
         "Honestly, these sessions are too early in the morning, and fifty minutes is never enough."),
    ),
    repairs=(
        ("invites_discussion", "It sounds like something didn't quite fit for you. Could we talk about what that "
                               "was like, without any pressure?"),
        ("acknowledges_contribution", "Thank you for being honest with me about that. It really helps me to know "
                                      "what is and isn't working for you."),
        ("clarifies_misunderstanding", "I think I may have given the wrong impression. I didn't mean that you "
                                       "were doing it wrong, only that we could adjust it together."),
        ("changes_tasks_goals", "Let's set that aside for now, and focus on what feels most useful to you this "
                                "week instead."),
        ("provides_rationale", "The reason I suggested it is that writing things down can slow the thoughts "
                               "down, but we can find another way that suits you better."),
        ("validates_defensive_posture", "It makes complete sense that you'd feel guarded about this, given how "
                                        "hard things have been."),
        ("discloses_internal_experience", "I notice I may have been pushing a bit hard just now, and I'm sorry "
                                          "about that."),
    ),
    moving_on=("Okay. Let's look at your plan for the week then.", "Alright. Shall we move on to the next item?"),
    reengage=("Yeah, I think I'd like that. It was harder than I let on.",
              "Thanks. I guess I've been feeling a bit frustrated, and it's not really about you.",
              "Okay. It helps to hear that. Maybe we can make it smaller."),
    closings=(
        ("We're nearly out of time. What will you take away from today?",
         "That I can test my predictions instead of just believing them."),
        ("Let's stop there for today. Does the plan for the week feel manageable?",
         "Yes, I think so. I'll start with the small steps."),
    ),
)


HELDOUT = Pool(
    openings=(
        ("Hi there, please take a seat. What's been on your mind this week?",
         "Mostly the exam results, and a few panic attacks on the train."),
        ("Nice to see you again. How did the exposure practice go?",
         "Better than I thought, although the first attempt was really tough."),
        ("Hello. Before we begin, is there anything urgent you want to bring today?",
         "Not urgent, but I had a big argument with my partner on Thursday."),
    ),
    exchanges=(
        ("When you felt the panic starting on the train, what did you do?",
         "I held on to the pole and counted the stations until it passed."),
        ("How long did it take for the anxiety to come down?",
         "About ten minutes, which felt like forever at the time."),
        ("What were you afraid would happen if you stayed?",
         "That I would faint, and everyone would stare at me."),
        ("Has that ever actually happened to you?",
         "No, never. I've felt dizzy, but I've never fainted."),
        ("What did you notice about your breathing during the argument?",
         "It was fast and shallow, and my chest felt tight."),
        ("What did your partner say that hurt the most?",
         "That I never listen. It felt unfair, because I try really hard."),
        ("How did you respond in that moment?",
         "I went quiet and left the room, which I know isn't great."),
        ("How are you coping with the grief around your grandmother?",
         "Some days are fine, and then a song on the radio sets me off completely."),
        ("What helps on the harder days?",
         "Talking to my cousin, and looking at old photos, strangely enough."),
        ("How much time did you spend on revision this week?",
         "About two hours a day, split into short blocks like we planned."),
        ("What usually happens just before you start putting things off?",
         "I open the book, feel overwhelmed, and reach for my phone."),
        ("If you imagine the next exposure step, what would it be?",
         "Maybe ordering coffee and sitting inside the cafe instead of taking it away."),
        ("How confident do you feel about that, from zero to one hundred?",
         "Around sixty. Nervous, but it feels possible."),
        ("What early warning signs would tell you a relapse is coming?",
         "Sleeping badly, skipping meals, and cancelling plans with friends."),
    ),
    therapist_long=(
        "Panic feels dangerous, but the sensations themselves are the body's alarm system going off at the "
        "wrong time. Each time you stay with the feeling instead of escaping, your brain learns that the alarm "
        "was a false one.",
        "With exposure, we build a ladder of situations from the least to the most frightening. We start near "
        "the bottom, stay in each situation until the anxiety settles, and only then move up one step.",
        "Grief doesn't move in a straight line. It tends to come in waves, and the waves are often triggered by "
        "small reminders, so having a few people or rituals you can turn to on those days can make a big difference.",
        "When we put things off, we usually get a short burst of relief, and that relief is exactly what keeps "
        "the habit going. Breaking the task into very small pieces makes starting feel less threatening.",
        "In conflicts, it can help to slow the conversation down. Try repeating back what your partner said "
        "before you answer, so they feel heard, and you get a few seconds to calm your own reaction.",
        "A relapse prevention plan is like a fire drill. We write down your warning signs now, while you feel "
        "well, together with the steps that helped you, so you have a clear plan if things start to slip.",
    ),
    client_long=(
        "On Monday I took the train two stops further than usual. My heart was racing when the doors closed, but "
        "I stayed on, and by the time we got to the station it had calmed down a lot.",
        "The argument started over something silly, whose turn it was to do the shopping. Then it turned into "
        "everything else, money, his family, and by the end we were both shouting and neither of us felt heard.",
        "I went back to my grandmother's house to help clear it out. I thought I'd be fine, but when I found her "
        "old recipe book I had to sit down in the kitchen and cry for a while.",
        "I managed to revise every morning this week, using the timer. The first block was always the hardest, "
        "but once I'd started I usually kept going for longer than I'd planned.",
        "At the cafe I ordered at the counter and sat by the window. I kept thinking people were looking at me, "
        "but when I actually glanced around, everybody was busy with their own conversations.",
        "Last month I stopped going to the running club because I felt too tired. Looking back, that was "
        "probably the first sign things were sliding, even though I didn't see it at the time.",
    ),
    therapist_short=("Mm, and what then?", "Say more about that.", "What was that like?", "Keep going.",
                     "What did you feel in your body?", "How did you make sense of it?"),
    client_short=("Yes, that's fair.", "I think that could work.", "I'll give it a go.", "That's a good point.",
                  "I see what you mean now.", "True, I hadn't noticed that."),
    therapist_cut_ins=("Sorry to jump in, but I think that's exactly the moment we should look at.",
                       "Wait, let's slow down there, because something important just happened.",
                       "Can we stay with that for a minute before moving on?"),
    client_cut_ins=("Yes, and the train was completely full, which made it even worse.",
                    "And that's exactly when he started shouting.",
                    "Right, that's the moment the dizziness always kicks in."),
    talk_through=("Could I just", "Wait, was", "Sorry, when", "But did you"),
    backchannels=("Uh-huh.", "I see.", "Sure.", "Yes.", "Mm-hmm.", "Uh-huh."),
    ruptures=(
        ("withdrawal.minimal_response", "How did the exposure ladder feel when you tried it?", "Okay I guess."),
        ("withdrawal.minimal_response", "What was going through your mind at the funeral?", "I don't know."),
        ("withdrawal.denial", "It seemed like the argument affected you quite a lot.",
         "Not really. It was nothing, honestly, we're fine now."),
        ("withdrawal.topic_shift", "What do you think the panic was trying to tell you?",
         "By the way, the parking outside was a nightmare today, they're doing roadworks again."),
        ("withdrawal.deferential_appeasing", "Would you prefer to try a different step this week?",
         "No, no, it's fine, whatever you want me to do is fine with me."),
        ("withdrawal.avoidant_storytelling", "How did you feel when your partner left the room?",
         "Well, so that reminds me of his brother, who once drove all the way to the coast just to buy a boat."),
        ("withdrawal.content_affect_split", "How was it clearing out your grandmother's house?",
         "It was the worst week of my life, ha ha, but anyway it's all done now."),
        ("confrontation.complaint_about_activities", "Did you do the revision blocks we planned?",
         "Those timers are ridiculous. I'm not a child, I don't need a stopwatch to study."),
        ("confrontation.complaint_about_therapist", "I'm wondering if we could look at your part in the argument.",
         "So now you're taking his side? I thought you were supposed to be helping me."),
        ("confrontation.complaint_about_progress", "Where do you feel you are with the panic now?",
         "Exactly where I started. All these sessions and I still can't get on a train without panicking."),
        ("confrontation.rejects_intervention", "Could you try staying in the cafe for twenty minutes?",
         "No. I'm not doing that, it's too much and I won't do it."),
        ("confrontation.efforts_to_control", "I'd like to review your ladder first today.",
         "I'd rather we didn't. I decide what we talk about today, and it's going to be my exams."),
        ("confrontation.defends_self", "It sounds like you skipped the last two practice sessions.",
         "I had good reasons for that. I was ill, and anyone would have done the same."),
    ),
    repairs=(
        ("invites_discussion", "I'm sensing this might not be sitting right with you. What's it like to be asked "
                               "about this today?"),
        ("acknowledges_contribution", "I really value you telling me that. Your feedback is exactly what helps "
                                      "us get this right."),
        ("clarifies_misunderstanding", "I'm sorry, I wasn't taking anyone's side. What I meant was that we could "
                                       "look at the whole pattern together."),
        ("changes_tasks_goals", "Let's change the plan, then. We can start with your exams, and come back to the "
                                "ladder only if it feels useful."),
        ("links_to_pattern", "I wonder if this is a bit like what happens with your partner, where it feels "
                             "like nobody is on your side."),
        ("validates_defensive_posture", "It's understandable to push back when it feels like you're being "
                                        "judged. You have every right to that."),
        ("redirects", "Let's come back to what matters most to you right now, which sounds like feeling "
                      "in control again."),
    ),
    moving_on=("Right. Let's go through the ladder, then.", "Okay. Next, I wanted to ask about your sleep."),
    reengage=("Thanks for saying that. I suppose I do feel judged sometimes.",
              "Okay, yes. That feels better, actually.",
              "Maybe. I was annoyed, but I know you're trying to help."),
    closings=(
        ("We have a few minutes left. What's one thing you'll practice this week?",
         "Taking the train one stop further, and staying with the feeling."),
        ("Let's wrap up there. How are you feeling as we finish?",
         "Calmer than when I came in, to be honest."),
    ),
)

POOLS = {"dev": DEV, "heldout": HELDOUT}


# ------------------------------------------------------------------------------------------------ builder


def _est_s(text: str) -> float:
    return len(text.split()) / WORDS_PER_S


class _Builder:
    """Accumulates lines for one session; `rng` is the only source of randomness (seeded per session)."""

    def __init__(self, rng: np.random.Generator, pool: Pool) -> None:
        self.rng, self.pool = rng, pool
        self.lines: list[Line] = []
        self.est = 0.0

    def pick(self, seq: Sequence):  # type: ignore[no-untyped-def]
        return seq[int(self.rng.integers(len(seq)))]

    def gap(self, lo: float = 0.3, hi: float = 1.2) -> float:
        return round(float(self.rng.uniform(lo, hi)), 3)

    def add(self, line: Line) -> None:
        self.lines.append(line)
        if line.at is None and line.at_frac is None:
            self.est += max(0.0, line.gap) + _est_s(line.text if line.said_words is None
                                                    else " ".join(line.text.split()[: line.said_words]))

    def exchange(self, pair: tuple[str, str], *, bc: bool = False, overlap: bool = False) -> None:
        t, c = pair
        self.add(Line(T, t, gap=self.gap()))
        self.add(Line(C, c, gap=-round(float(self.rng.uniform(0.2, 0.4)), 3) if overlap else self.gap()))
        if bc and len(c.split()) >= 10:
            self.add(Line(T, self.pick(self.pool.backchannels), at_frac=round(float(self.rng.uniform(0.3, 0.6)), 3)))

    def backchannel_over_last(self, speaker: str) -> None:
        self.add(Line(speaker, self.pick(self.pool.backchannels), at_frac=round(float(self.rng.uniform(0.3, 0.65)), 3)))


def _shuffled(rng: np.random.Generator, seq: Sequence) -> list:  # type: ignore[type-arg]
    idx = rng.permutation(len(seq))
    return [seq[int(i)] for i in idx]


def parse_attenuation(text: str) -> dict[str, float] | None:
    """`--attenuate` value -> {role: gain dB}: "client:10" -> {client: -10, therapist: 0}; "none" (or a
    0 dB attenuation) -> both 0 dB. Raises ValueError on anything else."""
    if text.strip().lower() in ("none", "equal", "0"):
        return {T: 0.0, C: 0.0}
    role, sep, db = text.partition(":")
    role = role.strip().lower()
    if not sep or role not in (T, C):
        raise ValueError(f"--attenuate: expected therapist:DB, client:DB or none, got {text!r}")
    value = float(db)
    if not 0.0 <= value <= 60.0:
        raise ValueError(f"--attenuate: DB must be within 0-60, got {value:g}")
    return {T: 0.0, C: 0.0, role: -value}


def build_script(session_id: str, scenario: str, pool: Pool, rng: np.random.Generator,
                 gains_db: dict[str, float] | None = None) -> Script:
    """One session's script (pure given `rng`). `gains_db` ({role: dB}) replaces the drawn speaker levels;
    the draw still happens, so the rest of the script does not depend on it."""
    voices = ["slt", "rms", "awb", "kal"]
    tv = "slt" if rng.random() < 0.5 else voices[1 + int(rng.integers(3))]
    cv = voices[int(rng.integers(4))]
    while cv == tv:
        cv = voices[int(rng.integers(4))]
    client_gain = round(float(rng.uniform(-4.0, 2.0)), 2)
    levels = gains_db if gains_db is not None else {T: 0.0, C: client_gain}
    cast = (Part(T, "therapist", tv, gain_db=levels[T]), Part(C, "client", cv, gain_db=levels[C]))
    b = _Builder(rng, pool)
    target = float(rng.uniform(65.0, 105.0))
    opening = b.pick(pool.openings)
    b.add(Line(T, opening[0], gap=0.0))
    b.add(Line(C, opening[1], gap=b.gap()))
    exchanges = _shuffled(rng, pool.exchanges)
    t_long, c_long = _shuffled(rng, pool.therapist_long), _shuffled(rng, pool.client_long)

    def next_exchange() -> tuple[str, str]:
        ex = exchanges.pop(0)
        exchanges.append(ex)
        return ex

    if scenario == "calm":
        while b.est < target - 8:
            b.exchange(next_exchange())
    elif scenario == "backchannel":
        k = 0
        while b.est < target - 8:
            if k % 2 == 0:
                b.add(Line(T, b.pick(pool.therapist_short), gap=b.gap()))
                b.add(Line(C, c_long[k // 2 % len(c_long)], gap=b.gap()))
                b.backchannel_over_last(T)
            else:
                b.add(Line(T, t_long[k // 2 % len(t_long)], gap=b.gap()))
                b.backchannel_over_last(C)
                b.add(Line(C, b.pick(pool.client_short), gap=b.gap()))
            b.exchange(next_exchange(), bc=True)
            k += 1
    elif scenario == "interrupt_cut":
        k = 0
        while b.est < target - 8:
            b.exchange(next_exchange())
            if k % 2 == 0:  # client cuts the therapist off
                text = t_long[k // 2 % len(t_long)]
                n = len(text.split())
                b.add(Line(T, text, gap=b.gap(), said_words=int(rng.integers(max(6, n * 2 // 5), n * 3 // 4))))
                b.add(Line(C, b.pick(pool.client_cut_ins), gap=-b.gap(0.3, 0.8)))
            else:  # therapist cuts the client off
                b.add(Line(T, b.pick(pool.therapist_short), gap=b.gap()))
                text = c_long[k // 2 % len(c_long)]
                n = len(text.split())
                b.add(Line(C, text, gap=b.gap(), said_words=int(rng.integers(max(6, n * 2 // 5), n * 3 // 4))))
                b.add(Line(T, b.pick(pool.therapist_cut_ins), gap=-b.gap(0.3, 0.8)))
                b.add(Line(C, b.pick(pool.client_short), gap=b.gap()))
            k += 1
        b.exchange(next_exchange(), overlap=True)  # a terminal overlap: not an interruption
    elif scenario == "interrupt_through":
        k = 0
        while b.est < target - 8:
            b.exchange(next_exchange())
            if k % 2 == 0:  # therapist tries to come in, the client talks on
                b.add(Line(T, b.pick(pool.therapist_short), gap=b.gap()))
                b.add(Line(C, c_long[k // 2 % len(c_long)], gap=b.gap()))
                b.add(Line(T, b.pick(pool.talk_through), at=b.gap(1.2, 2.8)))
            else:  # client tries to come in, the therapist talks on
                b.add(Line(T, t_long[k // 2 % len(t_long)], gap=b.gap()))
                b.add(Line(C, b.pick(pool.talk_through), at=b.gap(1.2, 2.8)))
                b.add(Line(C, b.pick(pool.client_short), gap=b.gap()))
            k += 1
    elif scenario == "long_pause":
        k = 0
        while b.est < target - 8:
            t, c = next_exchange()
            if k % 3 == 0:  # switch pause: the client takes a long time to answer
                b.add(Line(T, t, gap=b.gap()))
                b.add(Line(C, c, gap=b.gap(3.3, 6.0)))
            elif k % 3 == 1:  # within-speaker pause: the therapist waits, then goes on
                b.add(Line(T, b.pick(pool.therapist_short), gap=b.gap()))
                b.add(Line(T, t, gap=b.gap(3.3, 6.0)))
                b.add(Line(C, c, gap=b.gap()))
            else:  # near miss: a noticeable but not long pause
                b.add(Line(T, t, gap=b.gap()))
                b.add(Line(C, c, gap=b.gap(1.8, 2.5)))
            b.est += 4.0
            k += 1
    elif scenario == "imbalanced_therapist":  # therapist about 75 %
        k = 0
        while b.est < target - 8:
            b.add(Line(T, t_long[k % len(t_long)], gap=b.gap()))
            b.add(Line(C, b.pick(pool.client_short), gap=b.gap()))
            if k % 2 == 1:
                b.exchange(next_exchange())
            k += 1
    elif scenario == "imbalanced_client":  # therapist about 15 %
        k = 0
        while b.est < target - 8:
            b.add(Line(T, b.pick(pool.therapist_short), gap=b.gap()))
            b.add(Line(C, c_long[k % len(c_long)], gap=b.gap()))
            k += 1
    elif scenario == "rupture_repair":
        ruptures = _shuffled(rng, pool.ruptures)
        repairs = _shuffled(rng, pool.repairs)
        k = 0
        while b.est < target - 8:
            b.exchange(next_exchange())
            if k < 3:
                sub, prompt, line = ruptures[k % len(ruptures)]
                b.add(Line(T, prompt, gap=b.gap()))
                b.add(Line(C, line, gap=b.gap(0.6, 2.0), labels=(f"rupture:{sub}",)))
                if k == 2 and rng.random() < 0.5:  # sometimes the therapist misses it
                    b.add(Line(T, b.pick(pool.moving_on), gap=b.gap()))
                    b.add(Line(C, b.pick(pool.client_short), gap=b.gap()))
                else:
                    rsub, rline = repairs[k % len(repairs)]
                    b.add(Line(T, rline, gap=b.gap(), labels=(f"repair:{rsub}",)))
                    b.add(Line(C, b.pick(pool.reengage), gap=b.gap()))
            k += 1
    elif scenario == "mixed":
        sub, prompt, line = b.pick(pool.ruptures)
        rsub, rline = b.pick(pool.repairs)
        steps = ["bc", "cut", "pause", "rupture", "through", "overlap"]
        steps = [steps[int(i)] for i in rng.permutation(len(steps))]
        for step in steps:
            if step == "bc":
                b.add(Line(T, b.pick(pool.therapist_short), gap=b.gap()))
                b.add(Line(C, c_long[1], gap=b.gap()))
                b.backchannel_over_last(T)
            elif step == "cut":
                text = t_long[0]
                n = len(text.split())
                b.add(Line(T, text, gap=b.gap(), said_words=int(rng.integers(max(6, n * 2 // 5), n * 3 // 4))))
                b.add(Line(C, b.pick(pool.client_cut_ins), gap=-b.gap(0.3, 0.8)))
            elif step == "pause":
                t, c = next_exchange()
                b.add(Line(T, t, gap=b.gap()))
                b.add(Line(C, c, gap=b.gap(3.3, 6.0)))
            elif step == "rupture":
                b.add(Line(T, prompt, gap=b.gap()))
                b.add(Line(C, line, gap=b.gap(0.6, 2.0), labels=(f"rupture:{sub}",)))
                b.add(Line(T, rline, gap=b.gap(), labels=(f"repair:{rsub}",)))
                b.add(Line(C, b.pick(pool.reengage), gap=b.gap()))
            elif step == "through":
                b.add(Line(T, b.pick(pool.therapist_short), gap=b.gap()))
                b.add(Line(C, c_long[0], gap=b.gap()))
                b.add(Line(T, b.pick(pool.talk_through), at=b.gap(1.2, 2.8)))
            elif step == "overlap":
                b.exchange(next_exchange(), overlap=True)
    else:
        raise ValueError(f"unknown scenario {scenario!r}")
    closing = b.pick(pool.closings)
    b.add(Line(T, closing[0], gap=b.gap()))
    b.add(Line(C, closing[1], gap=b.gap()))
    return Script(session_id, cast, tuple(b.lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--split", choices=sorted(POOLS), required=True)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated subset, cycled")
    ap.add_argument("--noise-dbfs", type=float, default=-78.0,
                    help="level of the seeded white noise floor (default -78: near silence; try -45 for a noisy room)")
    ap.add_argument("--stereo", action="store_true",
                    help="one channel per speaker (close-talk microphones; the therapist on channel 0 in even-numbered "
                         "sessions, channel 1 in odd ones); same scripts and truth as the mono mix")
    ap.add_argument("--crosstalk-db", type=float, default=-20.0,
                    help="with --stereo: level of each voice on the other speaker's channel (default -20 dB)")
    ap.add_argument("--attenuate", default=None, metavar="ROLE:DB",
                    help="mix ROLE (therapist or client) DB below the other speaker, e.g. client:10; 'none': equal "
                         "levels (default: the client's level drawn per session at -4..+2 dB)")
    args = ap.parse_args(argv)
    try:
        gains_db = None if args.attenuate is None else parse_attenuation(args.attenuate)
    except ValueError as e:
        ap.error(str(e))
    scenarios = [s for s in args.scenarios.split(",") if s]
    bad = [s for s in scenarios if s not in SCENARIOS]
    if bad or args.n < 1:
        ap.error(f"unknown scenarios {bad}" if bad else "--n must be at least 1")
    pool = POOLS[args.split]
    rows = []
    for i in range(args.n):
        scenario = scenarios[i % len(scenarios)]
        sid = f"{args.split}_{args.seed}_{i:03d}_{scenario}"
        rng = np.random.default_rng([args.seed, i, 0 if args.split == "dev" else 1])
        script = build_script(sid, scenario, pool, rng, gains_db)
        channel_of = ({T: i % 2, C: 1 - i % 2} if args.stereo else None)
        rendered = render_script(script, seed=int(rng.integers(2**31)), noise_dbfs=args.noise_dbfs,
                                 channel_of=channel_of, crosstalk_db=args.crosstalk_db)
        meta = {"split": args.split, "scenario": scenario, "seed": args.seed, "index": i,
                "noise_dbfs": args.noise_dbfs, "channels": 2 if args.stereo else 1,
                "client_gain_db": script.part(C).gain_db - script.part(T).gain_db}
        paths = write_session(args.out, rendered, extra=meta)
        rows.append({"audio": paths["audio"].name, "session_id": sid, "consent_recording": "true",
                     "consent_analysis": "true", "consent_date": "2026-11-02", "num_speakers": 2, "therapist": "",
                     **meta})
        t = rendered.truth
        print(f"{sid}: {t.duration_s:.1f} s, therapist share "
              f"{dict(t.talk_time.by_role).get('therapist', 0) / max(1e-9, sum(v for _, v in t.talk_time.by_role)):.2f}, "
              f"{len(t.events)} events", flush=True)
    manifest = manifest_csv(rows, ("split", "scenario", "seed", "index", "noise_dbfs", "channels", "client_gain_db"))
    atomic_write_text(args.out / "manifest.csv", manifest, mode=0o644)
    print(f"wrote {args.n} sessions and {args.out / 'manifest.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
