"""Generate the TRAIN split of the rupture/repair marker corpus (models/tagger/data/train.jsonl).

Reproducible: a fixed seed, hand-written phrasing pools, no network, no model. Format: see
models/tagger/data/README.md. Every item records its `template` (the id of the target phrasing it came
from) so that scripts/train_tagger.py can carve a dev split by template group (no phrasing shared between
the training and dev parts).

    .venv/bin/python scripts/make_tagger_corpus.py --out models/tagger/data/train.jsonl --seed 13

Design
- A client target is a rupture subtype or `none`; a therapist target is a repair strategy or `none`.
- Every rupture phrasing is paired with the kinds of therapist turn it plausibly follows (an invitation, a
  homework check, an interpretation...). Minimal responses are only withdrawal after an open invitation to
  talk; the same words after a closed or logistic question ("Shall we stop here?") are labelled `none`.
- Repairs are therapist turns that follow a client rupture in the context; ordinary therapist turns
  (reflections, psychoeducation, agenda setting) after ordinary client talk are `none`. The same kind of
  sentence (an explanation, a topic change) is a repair only when it answers a rupture.
- Hard negatives (`none`): collaborative disagreement, backchannels, short answers to closed questions,
  emotional disclosure, engaged storytelling, questions asking for clarification, thanks at closing.
- Cues: latency and interruption are sampled per label with a deliberate overlap between classes (cues
  help, they do not decide).
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter
from pathlib import Path

# --------------------------------------------------------------------------------------------- slots
SLOTS: dict[str, list[str]] = {
    "person": ["my mum", "my dad", "my husband", "my wife", "my partner", "my boss", "my sister", "my brother",
               "my son", "my daughter", "my ex", "my flatmate", "my manager", "my best friend", "my stepfather"],
    "topic": ["work", "the divorce", "my drinking", "the panic attacks", "the funeral", "money", "my weight",
              "the custody thing", "my sleep", "the accident", "my mother", "the affair", "school",
              "the diagnosis", "the move"],
    "activity": ["the thought record", "the breathing exercise", "the exposure list", "the mood diary",
                 "the worksheet", "the role-play", "the behavioural experiment", "the sleep diary",
                 "the grounding exercise", "the activity schedule", "the journaling", "the chair work"],
    "feeling": ["angry", "sad", "scared", "ashamed", "lonely", "hurt", "anxious", "guilty", "numb", "furious"],
    "day": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "the weekend", "Sunday night"],
    "thing": ["the garden", "the football", "the new phone", "the car", "the weather", "my cousin's wedding",
              "the dog", "a documentary I saw", "the traffic on the way here", "the building work next door"],
}


def fill(text: str, rng: random.Random, therapist: bool = False) -> str:
    """Fill {slot}s; in a therapist's mouth "my mum" becomes "your mum"."""
    def pick(m: re.Match) -> str:
        v = rng.choice(SLOTS[m.group(1)])
        return "your " + v[3:] if therapist and v.startswith("my ") else v
    return re.sub(r"\{(\w+)\}", pick, text)


# ------------------------------------------------------------------------------ therapist context pools
# kind -> phrasings (therapist turns that a client target follows)
T_CONTEXT: dict[str, list[str]] = {  # noqa: E501
    "invite_feeling": [
        "How did you feel when {person} said that?",
        "What was that like for you?",
        "What comes up for you as you tell me this?",
        "Can you say more about what you were feeling in that moment?",
        "What's happening inside as we talk about {topic}?",
        "I notice your voice changed just then. What's going on for you?",
        "Tell me about the week. How have things been?",
        "Where would you like to start today?",
        "What was the hardest part of that for you?",
        "How are you feeling about {topic} now?",
        "Could you tell me more about what happened with {person}?",
        "What do you make of that?",
        "When you think about {person}, what do you notice in your body?",
        "Last time you mentioned {topic}. How has that been since?",
        "What did you want to say to {person}, in that moment?",
    ],
    "homework_check": [
        "How did {activity} go this week?",
        "Did you get a chance to try {activity}? How was it?",
        "Let's look at {activity} from last week. What did you notice?",
        "Last week we agreed you'd try {activity}. How did that go?",
        "Tell me how the practice went.",
        "What did you find when you did {activity}?",
    ],
    "reflection": [
        "It sounds like you were really hurt by what {person} did.",
        "I'm hearing a lot of anger toward {person}.",
        "It seems like this has been weighing on you for a long time.",
        "So part of you wants to leave and part of you is scared to.",
        "You sound exhausted.",
        "It sounds like nobody noticed how much you were carrying.",
        "You seem a bit quieter today than usual.",
        "There's a lot of sadness in what you're describing.",
    ],
    "interpretation": [
        "I wonder if what happens with your boss echoes what happened with your father.",
        "It seems like whenever someone gets close, you find a reason to pull away.",
        "I wonder if you're expecting me to judge you the way {person} did.",
        "Perhaps the anger at {person} is covering something more painful.",
        "I'm struck that you always apologise before you say what you need.",
        "Maybe cancelling last week had something to do with what we talked about.",
    ],
    "suggestion": [
        "I'd like us to try an exercise where you imagine {person} sitting in that chair.",
        "What if this week you tried {activity} every evening?",
        "I think it could help to rate your anxiety before and after, like we practised.",
        "Could we try going back to the memory, slowly, and notice what happens?",
        "One option would be to cut down to three drinks on weekdays. How does that sound?",
        "I'd suggest we start the exposure with the lift, then the supermarket.",
        "Would you be willing to try talking to each other directly now, rather than to me?",
        "Let's write down the automatic thought and look for evidence for and against it.",
        "What would it be like to tell {person} how you actually feel?",
        "I'd like you to notice the thought and let it pass, rather than argue with it.",
    ],
    "closed_question": [
        "Did you take the medication this week?",
        "Are you still working at the same place?",
        "Did you manage to sleep any better?",
        "Is {day} still okay for next week?",
        "Did you bring the form?",
        "Have you had anything to drink since we last met?",
        "Do you have the worksheet with you?",
        "Was that before or after the move?",
        "Is your sister still staying with you?",
        "Did the GP call you back?",
        "Are you okay to keep going for a few more minutes?",
        "Would you like some water?",
    ],
    "closing": [
        "Shall we stop here for today?",
        "We're almost at time. Is there anything you want to add before we finish?",
        "Same time next week?",
        "Okay, let's leave it there. See you {day}?",
        "Is it okay if we pick this up next time?",
    ],
    "process_check": [
        "How is it for you, working on this together?",
        "How are you finding our sessions so far?",
        "I want to check in: how did what I just said land with you?",
        "Is this the right focus for you today?",
        "How is the pace of this for you?",
    ],
    "agenda": [
        "Let's set the agenda. What would you like to put on it today?",
        "Today I thought we could review the week and then plan the next step. Does that work?",
        "We have about forty minutes. What feels most important?",
        "Before we start, let's do the mood rating. From zero to ten?",
        "On a scale of one to ten, how important is it for you to cut down?",
        "I thought we might look at the timeline today. Is that okay?",
    ],
    "psychoeducation": [
        "Anxiety tends to peak and then come down on its own if we don't escape.",
        "Avoidance brings short-term relief but keeps the fear going in the long run.",
        "After a trauma, the brain can stay on high alert even when you're safe.",
        "In couples, one partner often pursues while the other withdraws, and it becomes a cycle.",
        "Thoughts aren't facts; they're guesses the mind makes, often very fast.",
    ],
    "parameters": [
        "Just a reminder that I'll be away for two weeks in August.",
        "We'll need to move next week's session to {day}.",
        "We have four sessions left of the twelve the service offers.",
        "If you cancel with less than a day's notice, the session is still charged.",
    ],
}

# ---------------------------------------------------------------------------------- client none pools
# (label none) client turns that are not ruptures, each with the context kinds it fits.
CLIENT_NONE: list[tuple[tuple[str, ...], list[str]]] = [
    # short answers to closed questions / logistics
    (("closed_question",), ["Yes.", "Yeah, I did.", "No, not yet.", "Yes, every morning.", "Twice, I think.",
                            "Yep, here it is.", "After, I think.", "Still the same place, yeah.", "No.",
                            "Yes, that's fine.", "Mm, a bit better, yeah.", "No, she left on {day}.",
                            "Not yet, I'll chase them.", "Yes please.", "Sure, I'm okay.",
                            "None at all, actually.", "One glass on {day}, that was it.", "Yeah, sure."]),
    (("closing",), ["Fine.", "Okay.", "Yes, that's fine.", "Sure, see you then.", "Yeah, let's stop.",
                    "No, I think that's everything. Thank you.", "Okay, thanks, that was helpful.",
                    "Yes, {day} works.", "Thanks. I feel a bit lighter actually.",
                    "That's okay, I've got a lot to think about.", "Fine, see you next week."]),
    # backchannels (after reflections / psychoeducation)
    (("reflection", "psychoeducation", "interpretation"), ["Mm-hm.", "Yeah.", "Right.", "Mm.", "Yeah, yeah.",
                                                           "Okay.", "Uh-huh.", "Exactly.", "Yes, that's it."]),
    # engaged answers, emotional disclosure that is not withdrawal
    (("invite_feeling", "reflection"), [
        "Honestly I was furious. I went to the car and just screamed.",
        "It was awful. I keep replaying it and I feel sick every time.",
        "I felt about six years old again, like nothing I did was right.",
        "I cried the whole way home, and I haven't cried like that in years.",
        "Scared. I'm scared that if I say what I need, {person} will leave.",
        "I think I felt ashamed, and then angry that I felt ashamed.",
        "Hurt, mostly. I didn't expect it from {person}.",
        "It's been a hard week. The anniversary was on {day} and I couldn't get out of bed.",
        "I felt {feeling}, and I didn't know what to do with it, so I went for a walk.",
        "There's this tightness in my chest when I think about {topic}.",
        "Relieved, actually. And then guilty for feeling relieved.",
        "I miss her so much. Everything in the house reminds me of her.",
        "I was shaking. I had to sit down in the corridor for ten minutes.",
        "Better than last week. I talked to {person} and it went okay.",
        "Honestly, I think I was angry at myself more than at {person}.",
        "I'd like to talk about {topic}, it's been on my mind all week.",
        "Yes, that's exactly it. I've been carrying it for years.",
        "It felt like being back there. The smell, the noise, all of it.",
        "Lonely. Really lonely. Nobody rang all weekend.",
        "I think I was {feeling} but I smiled through it, like I always do, and I hate that.",
    ]),
    (("homework_check",), [
        "I did it four times. The first one was really hard but it got easier.",
        "I managed {activity} on three days. I wrote down what happened each time.",
        "It was hard, honestly, but I noticed my anxiety dropped after about twenty minutes.",
        "I only did it twice, work was mad, but both times were useful.",
        "I brought it. There's one entry I want to go through with you.",
        "It went better than I expected. I rated it an eight before and a four after.",
        "I struggled with the second column, I wasn't sure what counts as evidence.",
        "I didn't finish it, but I did the first part and I've got questions.",
        "I tried it on {day} when I was upset and it helped a bit.",
    ]),
    # collaborative disagreement (hard negatives for confrontation)
    (("interpretation", "reflection", "suggestion"), [
        "I'm not sure that's quite it. I think it's more about feeling invisible.",
        "Maybe, but I think it's more to do with {person} than with my dad.",
        "Hmm, partly. Can I think about that? It doesn't feel completely right.",
        "I see what you mean, though I'd put it differently: it's less about him and more about me.",
        "I don't think that's it, but it's close. It's more like I'm waiting to be let down.",
        "That's interesting. I hadn't thought of it that way, and I'm not sure I agree yet.",
        "I'd rather start with the supermarket than the lift, if that's okay. The lift feels too big.",
        "Could we do it with {person} in mind instead? That feels more relevant.",
        "I want to try it, but can we make it three evenings instead of every evening?",
        "I'm a bit nervous about that, but okay, let's try.",
        "Okay. What would I actually say, though? Can we practise?",
        "I think three drinks is realistic. Maybe two on weeknights.",
        "Yes. Let's write it down. The thought was 'they all think I'm useless'.",
        "I can try. I'll probably feel silly talking to a chair.",
        "That makes sense. I think that's what happened on {day}.",
        "Wait, can you explain that again? I'm not sure I followed.",
        "What do you mean by evidence, exactly?",
        "So you're saying the anxiety would come down if I just stayed?",
    ]),
    (("process_check",), [
        "It's good, actually. It's the first time I've said this stuff out loud.",
        "Helpful. I like that we have a plan.",
        "Fine. Maybe a bit fast today, but it's okay.",
        "It's hard, but in a good way, I think.",
        "Yes, this is what I wanted to look at.",
        "Honestly it's a relief to have somewhere to bring this.",
    ]),
    (("agenda",), [
        "I'd like to talk about the argument with {person}, and maybe the sleep.",
        "Six, maybe. Better than last week.",
        "Eight. It really matters to me now.",
        "That works. And I want to mention something about work at the end.",
        "Can we start with {topic}? It's been a rough few days.",
        "Yeah, the timeline is fine. I've been thinking about it.",
        "Four. It's been a bad week.",
    ]),
    (("psychoeducation",), [
        "That makes sense. That's what happens when I leave the shop.",
        "So the more I avoid it, the bigger it gets.",
        "That's us. I chase and he goes quiet.",
        "Huh. I never thought of it like that.",
        "Is that why I jump at every noise at night?",
    ]),
    (("parameters",), [
        "That's fine, I'm away too that week.",
        "Okay, {day} should work.",
        "Okay. Can we plan what happens after the twelve?",
        "Right, thanks for telling me in advance.",
    ]),
]

# ------------------------------------------------------------------------------------- rupture pools
# label -> (context kinds, phrasings)
RUPTURES: dict[str, tuple[tuple[str, ...], list[str]]] = {
    "withdrawal.denial": (("invite_feeling", "reflection", "interpretation"), [
        "I'm not angry. I'm fine with it.",
        "No, it doesn't bother me at all.",
        "I'm not upset. Why would I be upset?",
        "It's fine, really. It didn't affect me.",
        "I don't feel anything about it, honestly.",
        "No, I'm over it. That's all in the past.",
        "I wasn't hurt. It's just how {person} is.",
        "I'm not sad, I'm just tired.",
        "There's nothing going on. I'm fine.",
        "Honestly it's no big deal. I don't know why you keep coming back to it.",
        "Nah, I'm good. It didn't really get to me.",
        "I don't think I'm angry at {person}. Not at all.",
        "I'm okay. Everything's okay.",
        "It's not an issue for me anymore.",
    ]),
    "withdrawal.minimal_response": (("invite_feeling", "homework_check", "process_check", "reflection"), [
        "Fine.", "Okay.", "Dunno.", "I don't know.", "Not much.", "It was fine.", "Same as usual.",
        "Mm.", "Nothing really.", "Alright, I guess.", "Yeah. Fine.", "Whatever.", "Don't know.",
        "Not really.", "It was okay.", "Nothing.", "Hard to say.", "I guess.", "Fine, I suppose.",
        "No idea.", "Okay I guess.", "Meh.",
    ]),
    "withdrawal.abstract_communication": (("invite_feeling", "reflection", "interpretation"), [
        "I think in general people are just the way they are, and you have to accept that life is like that.",
        "It's more of a philosophical thing, about how relationships work in modern society.",
        "One could say that everyone has their issues, in the grand scheme of things.",
        "Well, theoretically, attachment patterns get passed down through generations, don't they.",
        "It's about the human condition, really. We all struggle with connection.",
        "I suppose feelings are just chemical reactions when you think about it.",
        "People in general tend to react to stress in different ways, it's well documented.",
        "It's a systemic thing, you know, the way families function as units.",
        "I mean, conceptually, there's always a tension between autonomy and belonging.",
        "In a way it's all relative. Everything has pros and cons.",
        "There's research on this, isn't there, about how grief has stages.",
        "It's the kind of thing that happens to lots of people, statistically speaking.",
    ]),
    "withdrawal.avoidant_storytelling": (("invite_feeling", "reflection", "interpretation", "homework_check"), [
        "Well, so on {day} I went to the shops, and the car park was full, so I drove round twice, and then "
        "I saw this woman from my old job, and she was telling me about her kitchen, they're doing it all in "
        "grey now, and then...",
        "That reminds me, my neighbour's been having this whole saga with the council about the fence, it "
        "started in March, and the man from the council came round, and...",
        "So anyway, {person} has this friend who works at the airport, and she was saying the queues have "
        "been crazy, and there was this one guy who missed his flight because...",
        "Let me tell you what happened at the garden centre. So we get there, right, and they've moved "
        "everything around, and my husband can't find the compost, and then...",
        "Oh, before I forget, my cousin's wedding was last weekend, and the venue was in this old barn, and "
        "the DJ played all this eighties stuff, and my uncle did his speech, which went on forever...",
        "The other day on the bus there was this man with a parrot, an actual parrot, and it kept saying "
        "hello to everyone, and the driver...",
        "It's like the time we went camping in Wales and it rained for five days, and the tent flooded, "
        "and we had to sleep in the car, and my brother kept complaining, and...",
        "Well, first I have to explain about work. So there's a restructure, and my team merged with "
        "another team, and their manager used to be at head office, and she has this way of...",
        "So the dog got out on {day}, and we were chasing him round the estate, and this kid on a scooter "
        "was helping, and then the dog went into someone's garden, and...",
        "I was watching this documentary about penguins, and there's this bit where the dad penguins hold the "
        "eggs on their feet all winter, and the narrator said...",
    ]),
    "withdrawal.topic_shift": (("invite_feeling", "reflection", "interpretation"), [
        "Anyway. Did you have a nice weekend?",
        "Can we talk about something else? How's {thing}?",
        "Oh, by the way, I saw that the parking here has gone up again.",
        "Never mind that. I meant to ask, are you on holiday soon?",
        "Moving on. Can we talk about my holiday plans instead?",
        "I like your new plant. Is that new?",
        "Let's not get into that. Did I tell you about {thing}?",
        "Anyway, the traffic was terrible this morning.",
        "Speaking of which, my car's making a weird noise again.",
        "Oh, that reminds me, I need to ask about the invoice.",
        "Hm. So, what did you think of the match on {day}?",
        "Sorry, random, but is it always this cold in here?",
    ]),
    "withdrawal.deferential_appeasing": (("suggestion", "interpretation", "reflection", "process_check"), [
        "Whatever you think is best. You're the expert.",
        "Yes, you're right, you're always right. I'll do whatever you say.",
        "Sure, sure, that sounds great. Whatever you want.",
        "Of course. Sorry. I should have thought of that.",
        "You know best. I'll just go along with it.",
        "Yes, absolutely, you're completely right, I'm sorry for going on.",
        "Okay, if you think so. I don't want to be difficult.",
        "That's a brilliant idea. Everything you suggest is brilliant.",
        "I'll try to be a better client, I promise.",
        "Sorry, I'm wasting your time. We can do whatever you'd planned.",
        "Yes, yes, of course. I agree completely.",
        "I'm sure you're right. You've done this a lot longer than me.",
    ]),
    "withdrawal.content_affect_split": (("invite_feeling", "reflection"), [
        "(laughs) Yeah, so my dad hit me with a belt most nights. Anyway, it was fine, ha.",
        "It's funny really, I found out about the affair on my birthday. (laughs)",
        "Oh, the diagnosis? Terminal, they said. (laughs) Typical me.",
        "Ha, yeah, I was in the car when it flipped. Pretty wild, actually. (laughs)",
        "I mean, she died and nobody told me for a week, which is kind of hilarious when you think about it.",
        "(smiling) He said I was worthless and threw my stuff out on the lawn. Classic {person}.",
        "Yeah, I got fired, lost the flat, all in one week. (laughs) What a week, eh.",
        "So I basically stopped eating for a month. (laughs) Great diet, honestly.",
        "They left me at the hospital on my own. (chuckles) Character building, right?",
        "(cheerfully) Oh yeah, the assault. It happened in the stairwell. Anyway.",
        "It's a bit of a joke, really. I tried to end it all last spring. (laughs)",
    ]),
    "withdrawal.self_criticism_hopelessness": (("invite_feeling", "homework_check", "reflection", "suggestion"), [
        "What's the point. Nothing's going to change. I'm just broken.",
        "I'm useless. I couldn't even do the worksheet properly.",
        "It's my fault. It's always my fault. I ruin everything.",
        "I don't think therapy works for people like me.",
        "I'm a hopeless case. You should spend your time on someone who can be helped.",
        "I'm pathetic. A grown adult who can't go into a shop.",
        "I'll never get better. I've been like this forever.",
        "Honestly I'm just a failure at everything, this included.",
        "There's no point trying. I'll mess it up like I always do.",
        "I'm too stupid to get this. Sorry.",
        "Nobody could fix me. I'm beyond help.",
        "I'm just a terrible person. Maybe I deserve what happened.",
    ]),
    "confrontation.complaint_about_therapist": (("interpretation", "reflection", "suggestion", "process_check", "invite_feeling"), [
        "You're not listening to me. You never listen.",
        "Honestly, you don't understand me at all.",
        "You keep interrupting me. It's really annoying.",
        "You're judging me. I can see it on your face.",
        "Do you even care, or is this just a job to you?",
        "You sound like my mother when you say that.",
        "You're too young to understand what I'm going through.",
        "You obviously don't remember anything I told you last week.",
        "You're so cold. It's like talking to a wall.",
        "You always take {person}'s side.",
        "I don't trust you. You'd probably write it all down and tell someone.",
        "Frankly you're not very good at this.",
    ]),
    "confrontation.complaint_about_activities": (("homework_check", "suggestion", "agenda"), [
        "These worksheets are pointless. I'm not doing another one.",
        "I hate the breathing exercises. They make me feel worse.",
        "Talking to an empty chair is ridiculous. I'm not doing that.",
        "This homework is a waste of time. It's just busywork.",
        "I'm sick of the mood ratings. Every week, the same numbers.",
        "The diary is stupid. Writing things down doesn't change anything.",
        "Role-plays are embarrassing. I feel like an idiot.",
        "I don't see how rating my anxiety out of ten is supposed to help.",
        "Going over the memory again and again is just torture. What's the point of that?",
        "These scaling questions are so patronising.",
        "I'm not doing {activity} again. It's childish.",
    ]),
    "confrontation.complaint_about_parameters": (("parameters", "closing", "agenda", "invite_feeling"), [
        "Fifty minutes is nowhere near enough. We always stop just when it matters.",
        "Why do I have to pay for the session when I was ill? That's not fair.",
        "Once a week isn't enough. I'm struggling in between and there's nobody.",
        "You're going away again? That's the second time this year.",
        "Twelve sessions is ridiculous. You can't fix anything in twelve sessions.",
        "Why can't I text you between sessions? Other therapists allow it.",
        "This room is horrible. It's freezing and you can hear everything through the wall.",
        "I don't see why we can't meet in the evenings. I'm losing pay to come here.",
        "It's always me adjusting to your schedule.",
        "Changing the day again? I had to rearrange everything for this one.",
    ]),
    "confrontation.complaint_about_progress": (("homework_check", "invite_feeling", "process_check", "agenda"), [
        "We've been doing this for months and nothing has changed.",
        "I'm not getting any better. If anything, I'm worse.",
        "This isn't working. I still can't leave the house.",
        "I don't feel like we're getting anywhere.",
        "Six sessions in and I'm still having panic attacks every day.",
        "What exactly have we achieved? Nothing.",
        "My friend saw her therapist for a month and she's fine. I'm still stuck.",
        "We keep going round in circles.",
        "I was told this would help and it hasn't, at all.",
        "Honestly I feel like I'm wasting my money here.",
    ]),
    "confrontation.rejects_intervention": (("interpretation", "reflection", "suggestion", "psychoeducation"), [
        "No. That's not it at all. My father has nothing to do with this.",
        "That's rubbish. I'm not pushing people away.",
        "No, I'm not doing that. That won't work for me.",
        "That's psychobabble. It has nothing to do with my childhood.",
        "No. I'm not expecting you to judge me. Don't tell me what I think.",
        "That's completely wrong. I don't have a problem with drinking.",
        "No, I'm not going back to that memory. Forget it.",
        "Cutting down won't work. Don't even suggest it.",
        "You're reading way too much into it. I just forgot the appointment.",
        "I'm not talking to him directly. No way.",
        "That's just not true. Don't put words in my mouth.",
        "Stop analysing me. It's not some hidden pattern.",
    ]),
    "confrontation.defends_self": (("interpretation", "reflection", "homework_check", "suggestion"), [
        "I'm doing the best I can! You try doing this with three kids.",
        "It's not like I didn't try. I had a really busy week, okay?",
        "I'm not lazy. You make it sound like I don't care.",
        "Hey, I came, didn't I? That has to count for something.",
        "I'm not the problem here. {person} is the one who started it.",
        "Don't make it sound like it's my fault. I've been doing everything.",
        "I did my part. I can't control what other people do.",
        "I'm not avoiding anything! I've just been busy.",
        "It's easy for you to say. You don't have to live my life.",
        "I'm not being defensive, I'm just explaining why I couldn't.",
    ]),
    "confrontation.efforts_to_control": (("agenda", "suggestion", "interpretation", "invite_feeling", "process_check"), [
        "We're doing it my way today. I'll talk, you just listen.",
        "No questions today. I just want you to agree with me.",
        "I've decided what we're talking about, and it's not that.",
        "I want you to tell {person} she's wrong. Write a letter saying so.",
        "Stop. I'll tell you when I'm ready to talk about that.",
        "Just give me the answer. Tell me what to do and I'll do it.",
        "I need you to sign the form for work, that's all I want from today.",
        "We're finishing early today. I have things to do.",
        "Don't write anything down while I'm talking.",
        "Let me run the session for once. Sit back.",
    ]),
}

# --------------------------------------------------------------------------------------- repair pools
# Repairs follow a client rupture in the context. label -> phrasings; {rupture} contexts drawn from RUPTURES.
REPAIRS: dict[str, list[str]] = {
    "clarifies_misunderstanding": [
        "I think I didn't say that well. I didn't mean that you're to blame; I meant it's been hard.",
        "Let me clarify: I wasn't suggesting you're lazy at all.",
        "I'm sorry, I think what I said came out wrong. What I meant was that it makes sense you're tired.",
        "Hang on, I think we've misunderstood each other. I wasn't saying you should leave him.",
        "That's not what I meant. I was asking about the week, not criticising how you spent it.",
        "I want to correct something: I didn't mean the exercise is a test you can fail.",
        "I think my question sounded like an accusation, and it wasn't meant that way.",
        "Sorry, I may have misheard you. Did you say it was your sister who left, not you?",
        "I can see how that sounded. What I was trying to say is that you matter here.",
    ],
    "changes_tasks_goals": [
        "Okay, let's put the worksheet aside today and just talk about what's been happening.",
        "Let's change plan. Instead of the exposure, would it help to focus on sleep first?",
        "Maybe the chair work isn't right for now. We could just talk it through instead.",
        "How about we drop the homework for this week and try something shorter, just two minutes a day?",
        "Let's revisit the goals. If cutting down isn't what you want, what would you want?",
        "We don't have to go back to the memory today. We can work on feeling safer first.",
        "Would it be more useful to spend today on the problem with work, since that's pressing?",
        "Let's make the diary simpler: one line a day, no ratings.",
        "We can stop the mood ratings if they're not helping. Let's find something that fits you better.",
    ],
    "provides_rationale": [
        "The reason I ask you to write it down is that it slows the thought so we can look at it.",
        "Let me explain why we go back to the memory: each time, the brain files it a bit more as past.",
        "I suggest the ratings because they show us changes that are hard to notice week to week.",
        "The idea behind talking to the chair is that saying it out loud lets the feeling move.",
        "The point of the breathing isn't to get rid of anxiety, it's to show you can ride it out.",
        "I ask about your childhood because patterns we learn early often show up in relationships now.",
        "Sessions end on time so that this space stays predictable and safe, even when it's frustrating.",
        "Staying in the situation matters because leaving teaches your brain it was dangerous.",
        "The reason the sessions are weekly is to give you time to try things between them.",
    ],
    "invites_discussion": [
        "It seems like something I said didn't sit right with you. Can we talk about that?",
        "I'm wondering how you're feeling about our work together right now.",
        "Can we pause for a moment? I'd like to hear what's happening between us.",
        "What was it like to hear me say that?",
        "It sounds like you're frustrated with me. I'd really like to hear more about it.",
        "If this isn't helping, I want to know. What would you change about how we work?",
        "You went quiet when I mentioned that. What happened for you just then?",
        "I noticed you agreed very quickly. I'm curious whether part of you disagrees.",
        "How is it for you to be here today, with me?",
        "I wonder if you're disappointed with how therapy is going. Can you tell me?",
        "You laughed when you said that, and I'm wondering what the feeling underneath is.",
    ],
    "acknowledges_contribution": [
        "You're right, I did interrupt you. I'm sorry. Please go on.",
        "I think I pushed too hard just now, and that's on me.",
        "I got that wrong. I should have remembered what you told me last week.",
        "You're right that I moved us on too quickly. I'm sorry.",
        "I think I've been focusing on the worksheets and missing what matters to you.",
        "That's fair. I did change the day at short notice, and it cost you.",
        "I take your point. I was sounding like an expert instead of listening.",
        "I think I've been too cautious, and it's left you feeling stuck. I own that.",
        "You're right, I did sound judgmental. That wasn't fair to you.",
    ],
    "discloses_internal_experience": [
        "I notice I'm feeling a bit shut out right now, and I wonder if you're feeling shut out too.",
        "I feel a little anxious as we talk, as if I might say the wrong thing.",
        "I'm aware of feeling protective of you when you laugh about that.",
        "Honestly I feel a bit stuck with you at the moment, and I'd like us to look at that together.",
        "I find myself wanting to rescue you, and I'm not sure that helps.",
        "I feel sad hearing that, even though you're smiling as you tell it.",
        "I notice I'm getting defensive, and I want to put that aside and listen.",
        "When you said that, I felt pushed away, and I'm curious what that's like on your side.",
    ],
    "links_to_pattern": [
        "I wonder if what's happening between us now is like what happens with {person}: you feel unheard and pull away.",
        "This feels a bit like what you described at work, where you go along with things and then feel resentful.",
        "I'm struck that you apologised to me just now, the way you apologise to {person} for having needs.",
        "Could it be that expecting me to give up on you is the same fear you had with your dad?",
        "It sounds like with me, as with your partner, you say it's fine when it isn't.",
        "Maybe changing the subject here is like what you do at home when things get tense.",
        "I wonder whether feeling controlled by me echoes how controlled you felt growing up.",
        "Notice how you blamed yourself right away, just like you told me you did after the divorce.",
    ],
    "validates_defensive_posture": [
        "It makes sense that you'd want to keep that at a distance. It's a lot to let in.",
        "You don't have to talk about it until you're ready. Keeping it shut away has protected you.",
        "Of course you're wary of me. Trust has to be earned, especially after what happened.",
        "It's understandable that you're sceptical; you've been let down by services before.",
        "Laughing about it has helped you survive it. That makes a lot of sense.",
        "It's fair to be annoyed about the homework when you're exhausted.",
        "It's completely okay to say no to that. You know what you can manage right now.",
        "Staying busy has been your way of coping, and that's worked for you for a long time.",
        "Given how much you've had to defend yourself, it makes sense that you'd push back on me too.",
    ],
    "redirects": [
        "Okay. Let's come back to that another time. Can we look at the plan for this week?",
        "Alright, maybe let's leave that for now and go back to what happened on {day}.",
        "Let's set that aside for the moment. You mentioned {person} earlier; tell me more.",
        "Okay. Shall we move on to the sleep diary instead?",
        "Fair enough. Let's turn to something more concrete: what's coming up this week?",
        "Let's not get stuck on that. How about we go back to the exposure list?",
        "Okay, we'll park it. What would you most like to get out of today?",
        "Right, let's focus on something practical. How's the job search going?",
    ],
}

# Therapist `none` turns: ordinary moves after ordinary client talk (hard negatives for repairs).
THERAPIST_NONE: list[str] = [
    "That sounds really painful. Tell me more about what happened next.",
    "What did you notice in your body when that happened?",
    "So the thought was 'they all think I'm useless'. How much did you believe it, from zero to a hundred?",
    "Let's write that down. What evidence is there for that thought?",
    "It sounds like you were really {feeling}.",
    "You managed it three times. That's real progress.",
    "Avoidance brings relief in the short term, but it keeps the fear going.",
    "Let's set the agenda. What would you like to cover today?",
    "Okay, let's look at the exposure list and pick the next step.",
    "How did {person} react when you told them?",
    "What would you like to be different six months from now?",
    "On a scale of one to ten, how confident are you that you can do it?",
    "It sounds like part of you wants to change and part of you isn't sure yet.",
    "I'm hearing that the drinking helps you switch off after work.",
    "Let's try the grounding exercise together: notice five things you can see.",
    "When did you first notice feeling this way?",
    "Mm-hm.", "Right.", "Go on.", "Yeah.", "Okay.",
    "So what I'm hearing is that the weekend was hard but you got through it.",
    "Can you say more about that?",
    "We have about ten minutes left. Shall we plan the homework?",
    "Could each of you say what you heard your partner say just now?",
    "I'd suggest trying {activity} on three evenings this week.",
    "The idea is to notice the thought without acting on it.",
    "That's a big step, telling {person} how you felt.",
    "What was going through your mind right before the panic started?",
    "Let's go back to the timeline. What happened after you left the house?",
    "You said earlier that {topic} is on your mind. Do you want to start there?",
    "Let's do the mood rating before we start.",
    "It makes sense that you'd feel relieved and sad at the same time.",
    "I wonder what it would be like to say that to {person} directly.",
    "That connects with what you said last week about feeling responsible for everyone.",
    "What do you make of that?",
    "Good. Let's stop there for today. Same time next week?",
    "I'm glad you brought it. Let's go through that entry together.",
]


# ------------------------------------------------------------------------------ more phrasings (v2)
RUPTURES["withdrawal.denial"][1].extend([
    "Me? No, I'm good. Honestly.", "It didn't really affect me, to be honest.",
    "No, there's no anger there. I just think it's silly.", "I'm not bothered either way.",
    "That's not something I think about. It's fine.", "I've made my peace with it. Nothing to discuss.",
    "Upset? No. I'm just stating facts.", "It's all good. Really. No feelings about it.",
    "I don't miss him. Not even a little.", "I wasn't scared. I just didn't want to go.",
])
RUPTURES["withdrawal.minimal_response"][1].extend([
    "Yeah, okay.", "Sort of.", "S'pose.", "Not sure.", "Eh.", "Maybe.", "It's fine.", "Nope.",
    "Can't remember.", "Same.", "Kind of.", "Dunno really.",
])
RUPTURES["withdrawal.abstract_communication"][1].extend([
    "Everyone has a shadow side, as Jung would say.", "It's just the nature of families, isn't it, generally.",
    "You could argue that anger is a social construct.", "Life's a journey, you know, with ups and downs.",
    "It's all about energy, really, what you put out comes back.", "Society puts a lot of pressure on men in general.",
    "There are lots of theories about why people do what they do.",
    "In the abstract, I suppose loss is part of being alive.", "It's complicated. Things are complicated, in general.",
    "Intellectually I understand the dynamics at play.",
])
RUPTURES["withdrawal.avoidant_storytelling"][1].extend([
    "Oh, that reminds me of my aunt Pat. She had this caravan in Skegness, and every summer we'd go, and "
    "there was this arcade, and my cousin always won the teddy, and one year...",
    "Well it's a long story. So in 2009 I was working at the call centre, and my supervisor was called Dave, "
    "and Dave had this thing about biscuits, and...",
    "So my brother-in-law, right, he's bought this boat, and he doesn't know anything about boats, and last "
    "weekend he took it out and the engine cut out, and the coastguard...",
    "Let me back up. So the week before, we'd had the boiler man round, and he said the pipes were all wrong, "
    "and then the landlord said he'd send someone else, and...",
    "Funny story actually, at the school gates on {day} one of the mums was telling me about her holiday in "
    "Portugal, and the hotel had double-booked, and they ended up...",
    "So I have to tell you about the hospital car park saga, it's unbelievable. The machine took my card, "
    "then the attendant said...",
])
RUPTURES["withdrawal.topic_shift"][1].extend([
    "Oh, I meant to say, I've started going to the gym.", "Can I ask about the forms for my employer instead?",
    "Anyway, how long have you been working here?", "Did you see the news this morning?",
    "Ugh, I forgot my umbrella. Is it still raining?", "Right, so, what's the plan for next week?",
    "Let's talk about my sister's wedding instead, that's more fun.",
    "Random question, but do you have kids?", "I'd rather not go into that. Can we talk about something lighter?",
    "Oh, is that a new painting behind you?",
])
RUPTURES["withdrawal.deferential_appeasing"][1].extend([
    "Sorry, sorry. You're right. I'll do it properly next time.", "Whatever works for you works for me.",
    "You're the professional, so I'll just trust you on that.", "I don't mind, honestly, whatever you prefer.",
    "No, you're right, I was being silly earlier.", "Sure, I'll do anything you think will help. Anything.",
    "Yeah, good idea, good idea. Sorry for being difficult.", "Okay, yes. I'm sure that's right. You know me better than I do.",
    "I agree, I agree. I don't want to argue with you.", "Great, perfect, lovely. Whatever you think.",
])
RUPTURES["withdrawal.content_affect_split"][1].extend([
    "(laughs) So yeah, I basically raised my brothers because mum was always drunk. Fun times.",
    "My husband hits the wall when he's angry, but it's kind of funny, he always misses. (laughs)",
    "(grinning) I got the results and it's cancer. Anyway, how are you?",
    "Ha, yeah, I was homeless for a bit. Slept in a car park. Very glamorous. (laughs)",
    "Oh it's hilarious, my dad didn't turn up to my graduation. Again. (laughs)",
    "(laughing) I had a panic attack on the motorway and nearly crashed. Good times.",
    "It's funny, I haven't spoken to anyone in three weeks. (laughs) Hermit life.",
    "(smiling) My mum told me she wished I'd never been born. She's a character.",
])
RUPTURES["withdrawal.self_criticism_hopelessness"][1].extend([
    "I'm just weak. Other people cope with far worse.", "I always let everyone down. I'll let you down too.",
    "It's hopeless. I've tried everything and nothing works.", "I'm so stupid for still feeling like this.",
    "Why would anyone want to help someone like me?", "I'm a burden on everyone, you included.",
    "Nothing I do is ever good enough. I don't know why I bother.", "I should be over this by now. I'm pathetic.",
    "Things won't get better. They never do for me.", "I messed it up, like I mess everything up.",
])
RUPTURES["confrontation.complaint_about_therapist"][1].extend([
    "You don't get it. You've clearly never been through anything like this.",
    "Why do you keep looking at the clock? Am I boring you?", "You're patronising me.",
    "You just repeat back what I say. What's the point of you?", "You always twist my words.",
    "I feel like you don't like me very much.", "You were late again today. It feels like I don't matter to you.",
    "You're just like all the other therapists. You don't actually care.",
    "You're pushing me and I don't like it.", "Honestly you seem bored with me.",
])
RUPTURES["confrontation.complaint_about_activities"][1].extend([
    "I'm fed up with these questionnaires. Every single week.", "Homework again? I'm not in school.",
    "This exposure stuff is cruel. Why would I make myself panic on purpose?",
    "The mindfulness thing is nonsense. Sitting there noticing my breath does nothing.",
    "Filling in columns about my thoughts is a complete waste of my evening.",
    "Going through the trauma in detail every week is making me worse.",
    "These exercises feel fake. I don't want to pretend to talk to my dad.",
    "Writing a letter I'll never send? What's the point of that?",
    "The tapping, the eye movements, all of it feels like a gimmick.",
    "I hate the scaling thing. I don't think in numbers.",
])
RUPTURES["confrontation.complaint_about_parameters"][1].extend([
    "Why are the sessions always at the end of the day? I'm exhausted by the time I get here.",
    "Video calls are useless. I can't talk properly through a screen.",
    "It's outrageous that you charge for missed sessions.", "The waiting list was eight months. Eight.",
    "I don't like that you have to write notes for the service. Who reads them?",
    "Why do we have to stop exactly on the hour? It feels so rigid.",
    "Having the other group members here makes it impossible to talk.",
    "I don't see why my wife has to come to these sessions.",
    "You only ever offer me daytime slots. I have a job.",
    "Six weeks off over Christmas is too long. What am I supposed to do?",
])
RUPTURES["confrontation.complaint_about_progress"][1].extend([
    "I was better before I started coming here.", "Nothing's moved. Same problems, different week.",
    "When does this actually start working?", "We talk and talk and I still feel exactly the same.",
    "I've done everything you asked and I'm not any better.", "Honestly, I don't see the point of continuing.",
    "It's been a year. I should be further along than this.", "All this talking hasn't changed a thing at home.",
    "My drinking is the same as when I started. So what's this for?", "I'm still not sleeping. This isn't helping.",
])
RUPTURES["confrontation.rejects_intervention"][1].extend([
    "No. I don't accept that. It's not about control.", "That's your theory, not mine.",
    "I'm not doing breathing. Breathing isn't going to fix this.", "No. That's not what's going on at all.",
    "I don't need to forgive her. Stop suggesting that.", "You're wrong. It's not grief, it's anger.",
    "That's a nice idea but it's not happening.", "I'm not telling him that. Forget it.",
    "No, I don't think I'm catastrophising. Things really are that bad.", "Don't tell me I'm projecting.",
])
RUPTURES["confrontation.defends_self"][1].extend([
    "Excuse me, I've been sober for three weeks, so don't lecture me.", "I do listen to her! She's the one who doesn't.",
    "That's not fair. I've been trying really hard.", "Don't look at me like that. I had reasons.",
    "I'm not a bad parent. I know what I'm doing.", "I didn't do anything wrong. Why does everyone act like I did?",
    "I'm not in denial. I just see it differently.", "I don't have anger issues, okay? He provoked me.",
    "Well, you'd drink too if you had my job.", "It wasn't an excuse, it was the truth.",
])
RUPTURES["confrontation.efforts_to_control"][1].extend([
    "I'll decide when we talk about my mother. Not you.", "Just tell me if I'm right or not. Yes or no.",
    "I want the last twenty minutes for my stuff, not your exercises.", "You're not allowed to bring up my ex today.",
    "Put the clipboard down. I want your full attention.", "I'm only coming if we switch to evenings. Take it or leave it.",
    "I'm going to talk and I don't want you to say anything until I'm finished.",
    "I need you to tell my wife she's the one with the problem.",
    "Skip the check-in. We're going straight to my list.", "I want a different diagnosis written down.",
])
REPAIRS["clarifies_misunderstanding"].extend([
    "Oh, I think I confused two things. You said your brother, not your father. Sorry, let me get that right.",
    "When I said 'avoid', I didn't mean you're doing something wrong; I meant it's what anyone's mind does.",
    "I think you heard me saying you should forgive him. That isn't what I meant at all.",
    "Let me put that more clearly. I'm not saying the panic is in your head; it's very real.",
    "I should clarify: the homework isn't about getting it right, it's just information for us.",
    "Just so we're clear, I'm not taking your partner's side. I was trying to describe the cycle between you.",
    "Ah, I think we're talking about different weekends. You meant the one before?",
    "That came out more critical than I meant. I was trying to understand, not to judge.",
])
REPAIRS["changes_tasks_goals"].extend([
    "Okay, let's leave the exposure list for today. What would feel useful right now?",
    "Let's slow this down. We don't need to finish the timeline today.",
    "How about we make the goal just getting through the week, rather than cutting down?",
    "We could swap the written diary for voice notes, if writing feels like a chore.",
    "Let's step away from the technique and just talk about what's been hardest.",
    "Maybe we've been aiming too high. Let's pick one small thing instead.",
    "We can set the chair aside. Would you rather tell me about him directly?",
    "Let's change the focus: it sounds like work matters more to you than the sleep right now.",
])
REPAIRS["provides_rationale"].extend([
    "The reason I keep asking about feelings is that they often tell us what the thoughts are hiding.",
    "Let me say why I suggested it: practising when you're calm makes it easier to use when you're not.",
    "We rate things so we can see change you might not notice otherwise. That's the only reason.",
    "I'm suggesting the exposure because avoiding the lift has kept the fear strong. Facing it gradually shrinks it.",
    "The session length is fixed so you know exactly what to expect; it's part of keeping this predictable.",
    "The idea of writing it down is to get it out of your head and onto paper, where we can look at it together.",
    "The reason for working slowly with the memory is so you stay in control the whole time.",
    "I ask about the past because it can help make sense of reactions that feel out of proportion now.",
])
REPAIRS["invites_discussion"].extend([
    "I'd like to understand what that was like for you, what I just said.", "Did something I said upset you?",
    "It seems like something shifted just now. Can we look at what happened between us?",
    "I'm getting the sense you're not happy with how we're working. Is that right?",
    "How did it feel when I suggested that?", "Is there something about our sessions you'd want to be different?",
    "I noticed you changed the subject. I wonder if that topic felt like too much, or if it was something I did?",
    "You said 'whatever you think'. I'm curious what you think.",
])
REPAIRS["acknowledges_contribution"].extend([
    "I'm sorry, I think I rushed you there.", "You're right, I haven't been listening as well as I should.",
    "I made an assumption, and it wasn't fair. I'm sorry.", "I think I've been pushing my agenda instead of yours.",
    "Fair point. I did bring that up without checking with you first.", "I was late, and I'm sorry. That matters.",
    "I got that wrong, and I can see why it hurt.", "You're right. I've been giving you homework that doesn't fit your life.",
])
REPAIRS["discloses_internal_experience"].extend([
    "I feel a bit helpless right now, and I suspect you might feel that too.",
    "I notice I'm tensing up, as though we're on opposite sides, and I don't want that.",
    "Honestly, I'm moved by what you've just told me, even if you're saying it lightly.",
    "I'm aware I feel frustrated, and I think it's because I want this to help you.",
    "I find myself feeling a little nervous about getting it wrong with you.",
    "Right now I feel as if I'm on the outside, trying to get in.",
    "I feel pulled to agree with you, and I'm not sure that would be honest.",
    "When you apologise like that, I feel sad, because you haven't done anything wrong.",
])
REPAIRS["links_to_pattern"].extend([
    "I wonder if you're waiting for me to give up on you, the way others have.",
    "It sounds like saying 'whatever you want' to me is what you've done with people your whole life.",
    "Maybe there's something familiar here: someone in authority telling you what to do, and you resisting.",
    "I'm noticing that when things get close to the pain, a story starts, like you described with your family.",
    "Could this be like with your mother, where you had to be cheerful so nobody worried?",
    "This reminds me of what you said about your marriage, where you feel judged before you speak.",
    "Perhaps it's the same pattern: you expect to be criticised, so you criticise yourself first.",
    "I wonder if what's happening with me mirrors what happens with your boss.",
])
REPAIRS["validates_defensive_posture"].extend([
    "You've had good reasons to keep people at arm's length.", "It makes sense you'd protect yourself here too.",
    "Of course you're sceptical. Nothing has worked so far, so why would this?",
    "It's okay not to want to go there. We'll only go as far as you choose.",
    "Being careful with me is wise. You don't know me that well yet.",
    "That wariness has kept you safe. I respect it.",
    "It's fine to stay with the facts for now. Feelings can come later, if ever.",
    "You're right to push back if something doesn't fit. I'd rather you did.",
])
REPAIRS["redirects"].extend([
    "Okay. Let's look at your plan for the weekend instead.", "Alright, let's move to the practical side: the appointment on {day}.",
    "Let's leave that and go back to the breathing for a minute.", "Okay, let's change track. How's your sleep been?",
    "We can come back to it. For now, tell me about the new job.", "Let's turn to something else: the letter from the housing office.",
    "Okay. Let's go to the next thing on your list.", "Fine, let's put it to one side and check in on the medication.",
])
THERAPIST_NONE.extend([
    "And how did you respond when she said that?", "What happened then?", "It sounds like that really mattered to you.",
    "So the urge was strong, but you didn't act on it. How did you manage that?", "What did you tell yourself in that moment?",
    "Let's map that on the cycle: the trigger, the thought, the feeling, what you did.",
    "That's the avoidance we talked about. Notice how quickly it kicked in.", "How much do you believe that now, from zero to a hundred?",
    "You sound proud of that, and you should be.", "Let's try it now: breathe in for four, hold, and out for six.",
    "I'd like to hear from both of you. What did you each want in that moment?",
    "What are the good things about drinking, for you?", "What might be the first small step?",
    "Where do you feel that in your body right now?", "Let's go back to the memory, to the moment just before.",
    "What would you say to a friend who told you this?", "That sounds frightening.",
    "So you noticed the thought and let it go. That's exactly the skill.", "Tell me about the good moments this week too.",
    "Let's pick up where we left off last time, with your sister.", "That's an important insight.",
    "Would it help to write the plan down together?", "I'm going to summarise, and you tell me if I've got it right.",
    "How did the group respond when you shared that?", "Let's take a moment to notice how you feel after saying that.",
])
CLIENT_NONE.append((("invite_feeling", "reflection", "interpretation"), [
    "You know, I think you're right. I do go quiet when I'm scared of being a nuisance.",
    "It made me think about my dad, actually. He used to do exactly the same thing.",
    "Honestly? Embarrassed. I felt like everyone could see I was struggling.",
    "I was so angry I couldn't speak. I just stood there with the phone in my hand.",
    "I think grief, mostly. Which surprised me, because it's been three years.",
    "I'm not sure yet. Can I sit with it for a second?",
    "Mostly numb, and then on {day} it all came flooding out.",
    "That's hard to hear, but I think it's true.",
    "It felt good, actually, to finally say no to {person}.",
    "Ashamed. Really ashamed. I've never told anyone that before.",
    "Yes. And I think I've been doing it with you too, to be honest.",
    "I think I was trying to protect {person}, even though she hurt me.",
]))
CLIENT_NONE.append((("suggestion", "homework_check", "agenda", "psychoeducation"), [
    "Okay, I'll give it a go. What if it doesn't work, though?",
    "Can I do it in the mornings instead? Evenings are chaos with the kids.",
    "I'm willing to try, but I'd like to understand it a bit more first.",
    "I didn't agree with all of it, but the part about the cycle really landed.",
    "I did it, and it was awful in the moment, but afterwards I felt proud.",
    "Honestly, I forgot until {day}, but then I did it twice.",
    "I think the lift is too much right now. Could the stairs be first?",
    "That sounds doable. Let me put a reminder in my phone.",
    "I'd like to add something to the agenda, about {person}.",
    "I'm not totally convinced, but I trust you enough to try.",
    "I found the second part hard, the bit about evidence against.",
    "Could we go through an example together first?",
]))

CLIENT_NONE.append((("agenda", "invite_feeling", "process_check"), [
    "I want to talk about {topic} today, if that's okay.", "Can we spend some time on {person}? Things got worse.",
    "I'd like to start with something that happened on {day}.", "I've written a list of things I want to cover.",
    "I think the main thing for me today is work.", "Could we leave time at the end to plan next week?",
    "I'd like us to go back to what we talked about last time, about {person}.",
    "There's something I've been putting off telling you. Can I say it now?",
    "Honestly I'd like to just talk today, if that's alright, rather than do an exercise.",
    "Can I ask you something first? Is it normal to feel worse before better?",
    "I want to focus on the sleep. It's affecting everything.",
    "Seven. It was a decent week, actually.",
]))
CLIENT_NONE.append((("closed_question", "parameters"), [
    "No, not since {day}.", "Yes, she's still here. Until the end of the month.", "Not yet, they said next week.",
    "Yes, I've got it here somewhere.", "It was before, I think. Around March.", "Yes, same job, same hours.",
    "I did, mostly. I missed one day.", "Yeah, {day} is fine.", "No, I haven't had a drink.",
    "A little. Five hours instead of four.",
]))
RUPTURES["confrontation.efforts_to_control"][1].extend([
    "No. We're not doing the agenda. I'm telling you what happened and that's it.",
    "I only want to talk about {person}. Nothing about me.", "Don't interrupt me again. Let me finish.",
    "Next week we're doing it at my house. I'm not coming in.", "You need to give me a letter for my solicitor today.",
    "I'll bring the topics from now on. You just follow.",
])
RUPTURES["withdrawal.deferential_appeasing"][1].extend([
    "Oh, no, it's fine, whatever you'd like to focus on is fine with me.",
    "Sorry, I'll stop talking. You go ahead.", "I'm sure your way is better than mine.",
])
THERAPIST_NONE.extend([
    "What was the best moment of your week?", "Let's look at what went well first.", "How did your body feel afterwards?",
    "You said you felt lighter. What made the difference?", "Could you give me an example?",
    "Let's rate the distress now, zero to ten.", "I'll send the worksheet by email.",
    "It sounds like you and your partner want the same thing but go about it differently.",
])

# ordinary specific questions and ordinary answers: the bulk of a calm session (hard negatives by volume)
T_CONTEXT["specific_question"] = [
    "What helped most this week?", "Which part of the day is hardest for you?", "What did you do instead?",
    "What were you doing when the worry started?", "Who was there with you?", "What went through your mind?",
    "What would you like to try next?", "How did you spend the weekend?", "What did you notice afterwards?",
    "How did the conversation with {person} end?", "What's changed since we started?",
    "How many times did that happen this week?", "What do you think made it easier?",
    "Which of those felt most doable?", "What was different about {day}?", "How did you get on at work?",
    "What did you enjoy this week?", "How did you look after yourself?", "What did you tell them?",
    "How's your sleep been?", "How have things been since we last met?", "What's on your mind today?",
]
CLIENT_NONE.append((("specific_question", "homework_check", "invite_feeling"), [
    "I went for a walk every morning, and that really helped.", "Mornings, definitely. Evenings are easier.",
    "I phoned my friend instead of sitting with it, which was new for me.",
    "I was on the train, reading emails, and suddenly I thought I'd forgotten something important.",
    "Just {person}. We were in the kitchen.", "That I'd messed it up, that they'd be angry with me.",
    "Maybe the exposure with the supermarket. I feel ready for that.", "Quiet. I did some gardening and saw my sister.",
    "I felt calmer, and a bit proud of myself.", "It ended okay. We agreed to talk again on {day}.",
    "I'm sleeping better, and I'm not avoiding the phone as much.", "Three times, I think. Less than last week.",
    "Having a plan. Knowing what I'd do if it got bad.", "The first one, talking to my manager.",
    "I had a day off, so I wasn't rushing, and I noticed I was kinder to myself.",
    "Busy, but fine. We've got a new project and I'm enjoying it actually.",
    "Cooking with the kids on Sunday. That was lovely.", "I took baths, I went to bed earlier, I said no to an extra shift.",
    "I told them the truth, that I'd been struggling, and they were really kind about it.",
    "Better. Six or seven hours most nights.", "Not bad. Busy with work, but I'm coping.",
    "Mostly my mum's birthday coming up. I'm not sure how I feel about it.",
    "Tidying the spare room, and finally ringing the bank. Both felt good.",
    "Keeping a routine, I think, and getting outside more.", "I realised I'd been assuming the worst again.",
    "It helped a bit. My breathing slowed down and I could think again.",
    "That maybe I'm harder on myself than anyone else is.", "I made a list and did one thing at a time.",
    "Work's been full on, but I've been leaving on time, which is new.",
    "Pretty good, actually. I saw friends twice.", "A bit up and down, but more up than down.",
    "We went to the coast on Saturday. The kids loved it.", "I noticed I didn't check my phone as much.",
    "I practised the breathing on the bus, nobody noticed.", "I'd like to keep going with the diary, it's useful.",
    "I got to the shop and stayed for ten minutes. It was hard but I did it.",
    "He listened for once. I think saying it calmly helped.", "Okay, that makes sense.", "That's helpful, thank you.",
    "Right. I can see that.", "Yes, I think so.", "Good, I think. Better than I expected.",
    "Busy, honestly. Work has been a lot, but I'm getting through it.", "Hectic week, but okay. I'm managing.",
    "Tiring. The kids have been ill, but we're over the worst.", "Work's been stressful, but I've kept up with the walks.",
    "Pretty full on. I had two deadlines, but I handled them better than usual.",
]))

MODALITIES = ["cbt", "psychodynamic", "couples", "mi", "trauma", "person_centred", "dbt", "act", "family",
              "group", "schema", "emdr", "integrative"]

# context kinds that each modality uses more often
MODALITY_KINDS = {
    "cbt": ["homework_check", "agenda", "suggestion", "psychoeducation", "specific_question"],
    "psychodynamic": ["interpretation", "reflection", "invite_feeling"],
    "couples": ["suggestion", "reflection", "psychoeducation"],
    "mi": ["agenda", "reflection", "suggestion"],
    "trauma": ["suggestion", "psychoeducation", "invite_feeling"],
    "person_centred": ["reflection", "invite_feeling"],
    "dbt": ["homework_check", "suggestion"],
    "act": ["suggestion", "psychoeducation"],
    "family": ["reflection", "suggestion", "invite_feeling"],
    "group": ["invite_feeling", "reflection", "process_check"],
    "schema": ["interpretation", "reflection", "suggestion"],
    "emdr": ["suggestion", "psychoeducation", "invite_feeling"],
    "integrative": ["invite_feeling", "reflection", "interpretation", "suggestion", "specific_question"],
}

FILLERS_PRE = ["", "", "", "", "Um, ", "Well, ", "I mean, ", "Honestly, ", "Hmm. ", "So, "]


def _lower_first(text: str) -> str:
    first = text.split(" ", 1)[0]
    if first == "I" or first.startswith("I'") or first in ("Okay.", "Okay,"):
        return text
    return text[0].lower() + text[1:]


def vary(text: str, rng: random.Random) -> str:
    """Small surface variation: a filler, dropped final period, lower-case first letter (ASR style)."""
    if len(text.split()) > 2 and rng.random() < 0.3:
        pre = rng.choice(FILLERS_PRE)
        if pre:
            text = pre + _lower_first(text) if not text.startswith("(") else text
    if rng.random() < 0.2:
        text = text.rstrip(".")
    if rng.random() < 0.15 and not text.startswith("("):
        text = _lower_first(text)
    return text


T_CONTEXT["invite_feeling"] += [
    "How has the group been for you this week?", "What did you feel when your son said that at dinner?",
    "What's the feeling that goes with that memory?", "How are you, really?",
    "Take your time. What do you notice as you remember it?", "What was the week like between sessions?",
]
T_CONTEXT["suggestion"] += [
    "Let's try holding the image in mind while you follow my fingers.",
    "I'd like each of you to turn to the other and say what you need.",
    "Could you try writing a letter to your younger self?",
    "Let's practise saying no. I'll be your boss.",
]
T_CONTEXT["interpretation"] += [
    "I notice you laugh whenever we get close to your father.",
    "It seems that when you feel criticised, you attack first.",
    "Perhaps being the family's peacemaker left no room for your own anger.",
]
T_CONTEXT["homework_check"] += ["How did the diary card go?", "Did you manage the values exercise?"]


def opener_client(rng: random.Random) -> str:
    return fill(rng.choice(CLIENT_NONE[3][1] + CLIENT_NONE[4][1] + CLIENT_NONE[7][1]), rng)


def client_cues(label: str, rng: random.Random) -> dict:
    """Latency and interruption cues, overlapping across labels on purpose."""
    fam = label.split(".")[0]
    if label == "withdrawal.minimal_response":
        lat = rng.choice([rng.uniform(0.3, 1.5), rng.uniform(2.0, 7.0), rng.uniform(2.5, 9.0)])
        intr = False
    elif fam == "withdrawal":
        lat = rng.choice([rng.uniform(0.2, 1.5), rng.uniform(1.0, 4.5)])
        intr = rng.random() < 0.04
    elif fam == "confrontation":
        lat = rng.choice([rng.uniform(-0.8, 0.0), rng.uniform(0.1, 1.2)])
        intr = lat < 0 or rng.random() < 0.15
    else:
        lat = rng.choice([rng.uniform(0.1, 1.2), rng.uniform(0.2, 2.5), rng.uniform(-0.4, 0.6)])
        intr = lat < 0 and rng.random() < 0.5
    # the shared format keeps latency >= 0: a turn that starts in overlap has latency 0 and
    # interrupts_previous true
    return {"latency_s": round(max(0.0, lat), 2), "interrupts_previous": bool(intr)}


def make_client_item(label: str, rng: random.Random) -> dict:
    if label == "none":
        tidx = rng.choices(range(len(CLIENT_NONE)), weights=[len(p) ** 0.5 for _, p in CLIENT_NONE])[0]
        kinds, pool = CLIENT_NONE[tidx]
        j = rng.randrange(len(pool))
        target = pool[j]
        template = f"client-none-{tidx}-{j}"
    else:
        kinds, pool = RUPTURES[label]
        j = rng.randrange(len(pool))
        target = pool[j]
        template = f"{label}-{j}"
    kind = rng.choice(kinds)
    modality = rng.choice(MODALITIES)
    ctx = []
    n_ctx = rng.choice([1, 2, 2, 3])
    if n_ctx >= 3:
        ctx.append({"role": "therapist", "text": fill(rng.choice(T_CONTEXT[rng.choice(MODALITY_KINDS[modality])]), rng, True)})
    if n_ctx >= 2:
        ctx.append({"role": "client", "text": opener_client(rng)})
    ctx.append({"role": "therapist", "text": fill(rng.choice(T_CONTEXT[kind]), rng, True)})
    item = {
        "modality": modality,
        "context": ctx,
        "target": {"role": "client", "text": vary(fill(target, rng), rng)},
        "label": label,
        "cues": client_cues(label, rng),
        "template": template,
    }
    return item


def make_therapist_item(label: str, rng: random.Random) -> dict:
    modality = rng.choice(MODALITIES)
    if label == "none":
        j = rng.randrange(len(THERAPIST_NONE))
        target = THERAPIST_NONE[j]
        template = f"therapist-none-{j}"
        # ordinary client talk before it
        kinds, pool = rng.choice(CLIENT_NONE[3:])
        prev_client = fill(rng.choice(pool), rng)
        prev_ther = fill(rng.choice(T_CONTEXT[rng.choice(kinds)]), rng, True)
    else:
        j = rng.randrange(len(REPAIRS[label]))
        target = REPAIRS[label][j]
        template = f"{label}-{j}"
        rlabel = rng.choice(sorted(RUPTURES))
        kinds, pool = RUPTURES[rlabel]
        prev_client = fill(rng.choice(pool), rng)
        prev_ther = fill(rng.choice(T_CONTEXT[rng.choice(kinds)]), rng, True)
    ctx = [{"role": "therapist", "text": prev_ther}, {"role": "client", "text": prev_client}]
    if rng.random() < 0.25:
        ctx = ctx[1:]
    lat = round(rng.uniform(0.2, 2.0), 2)
    return {
        "modality": modality,
        "context": ctx,
        "target": {"role": "therapist", "text": vary(fill(target, rng, True), rng)},
        "label": label,
        "cues": {"latency_s": lat, "interrupts_previous": False},
        "template": template,
    }


def make_hard_therapist_none(rng: random.Random) -> dict:
    """A therapist turn after a rupture that is itself not a repair: more of the same intervention
    (pressing on with the task, repeating the interpretation). Kept rare: 3RS would code it as no repair."""
    pressing = [
        "Let's just finish the worksheet first.",
        "I still think it's about your father.",
        "Right. So, next item on the agenda.",
        "Okay. And the second column?",
        "Mm-hm. And what rating would you give it?",
        "So, the homework for next week is the same as this week.",
    ]
    rlabel = rng.choice(sorted(RUPTURES))
    kinds, pool = RUPTURES[rlabel]
    j = rng.randrange(len(pressing))
    return {
        "modality": rng.choice(MODALITIES),
        "context": [{"role": "therapist", "text": fill(rng.choice(T_CONTEXT[rng.choice(kinds)]), rng, True)},
                    {"role": "client", "text": fill(rng.choice(pool), rng)}],
        "target": {"role": "therapist", "text": vary(pressing[j], rng)},
        "label": "none",
        "cues": {"latency_s": round(rng.uniform(0.2, 1.5), 2), "interrupts_previous": False},
        "template": f"therapist-press-{j}",
    }


def make_minimal_none(rng: random.Random) -> dict:
    """The context-dependence pair: the same minimal words after a closing/logistic or closed question."""
    words = ["Fine.", "Okay.", "Yeah.", "Sure.", "Yes.", "Alright.", "No.", "Mm."]
    j = rng.randrange(len(words))
    kind = rng.choice(["closing", "closed_question", "closed_question"])
    return {
        "modality": rng.choice(MODALITIES),
        "context": [{"role": "therapist", "text": fill(rng.choice(T_CONTEXT[kind]), rng, True)}],
        "target": {"role": "client", "text": vary(words[j], rng)},
        "label": "none",
        "cues": client_cues("none", rng),
        "template": f"minimal-none-{j}",
    }


def generate(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    withdrawal = [k for k in RUPTURES if k.startswith("withdrawal")]
    confrontation = [k for k in RUPTURES if k.startswith("confrontation")]
    repairs = list(REPAIRS)
    items: list[dict] = []
    for i in range(n):
        r = rng.random()
        if r < 0.24:
            it = make_client_item(withdrawal[i % len(withdrawal)], rng)
        elif r < 0.385:
            it = make_client_item(confrontation[i % len(confrontation)], rng)
        elif r < 0.53:
            it = make_therapist_item(repairs[i % len(repairs)], rng)
        elif r < 0.78:
            it = make_client_item("none", rng)
        elif r < 0.84:
            it = make_minimal_none(rng)
        elif r < 0.97:
            it = make_therapist_item("none", rng)
        else:
            it = make_hard_therapist_none(rng)
        items.append(it)
    # deduplicate by the checker's rule (last context turn + target, case and punctuation normalised);
    # the phrasing template goes into the id ("train-00012:withdrawal.denial-3") for the grouped dev split
    seen = set()
    out = []
    for it in items:
        key = (_norm(it["context"][-1]["text"]), _norm(it["target"]["text"]))
        if key in seen:
            continue
        seen.add(key)
        template = it.pop("template")
        out.append({"id": f"train-{len(out):05d}:{template}", **it})
    return out


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def template_of(item_id: str) -> str:
    """The phrasing-template group of an item id written by this script (the id itself otherwise)."""
    return item_id.split(":", 1)[1] if ":" in item_id else item_id


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="models/tagger/data/train.jsonl")
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()
    items = generate(args.n, args.seed)
    p = Path(args.out)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", encoding="utf-8") as f:
        for it in items:
            f.write(json.dumps(it, ensure_ascii=False) + "\n")
    counts = Counter(it["label"] for it in items)
    fam = Counter(("none" if l == "none" else l.split(".")[0] if "." in l else "repair") for l in counts.elements())
    print(f"wrote {len(items)} items to {p}")
    print("families:", dict(fam))
    print("labels:", dict(sorted(counts.items())))


if __name__ == "__main__":
    main()
