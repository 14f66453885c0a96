"""A large, diverse, offline bank of user prompts for a self-distilled training corpus.

The embedded chat model answers these prompts to make the training conversations; the prompts
themselves are composed here, deterministically, from hand-written templates and word lists.

Templates hold ``{slots}``, filled by :func:`fill`:

- ``{key}`` draws a value from ``POOLS[key]`` (a list, or a function of the rng); two bare
  ``{key}`` slots in one text get different values.
- ``{key1}``, ``{key2}``: the same, but remembered, so ``{name1}`` is the same name throughout.
- ``{label:lo..hi}`` or ``{label:lo..hi/step}``: a whole number, remembered as ``{label}``.

Pool values may hold slots themselves; they are filled in turn.

Each category has short and long templates, grouped with the follow-up turns that make sense
after any answer to them. ``build_prompts`` draws ``PER_CATEGORY`` unique prompts a category
(a rng per category, so editing one category leaves the others as they were), adds a second
user turn to about 30% of them, interleaves the categories, and drops any row that repeats an
earlier prompt or shares eight consecutive words with a text in ``exclude`` (the held-out
prompts and the Spec-Bench questions: see :func:`default_exclude`).

    python -m specbench.data.prompt_bank [--out PATH] [--seed N] [--spec-bench PATH]
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import re
from pathlib import Path

from specbench.data.conversations import embedded_path
from specbench.io import atomic_open

PER_CATEGORY = 385  # prompts drawn per category, before the filters
TWO_TURN_SHARE = 0.30  # rows that get a follow-up user turn
NGRAM = 8  # a row sharing this many consecutive words with an excluded text is dropped
SPEC_BENCH = Path(__file__).parents[4] / "shared" / "data" / "spec_bench" / "question.jsonl"

# ----------------------------------------------------------------------------------------------
# shared word lists

NAMES = """Amara Bjorn Chiara Dmitri Efua Farid Greta Hiroshi Ilse Jamal Kalani Lucia Mateo Nkechi
Oskar Paloma Quinn Rafael Sione Tamsin Ugo Valeria Wen Xavier Yara Zainab Anders Beatriz Cyrus
Delphine Elif Femi Gideon Hollis Isabel Jasper Kofi Lena Marek Nadia Olu Pavel Rhea Soren Talia
Umar Vera Wyatt Yusuf Zora Ansel Bronwyn Caspian Dara Esme Florin Gwen Hamza Imogen Joaquin Kirra
Linnea Mirela Nico Orla Petra Rohan Saskia Teodor Una Vikram Willa Xiu Yannick Zeno Malik Ingrid
Bao Carmen Declan Freya Idris Juno Kenji Leila Mordecai Noor Ottilie Ravi Selma Tariq Wanjiru""".split()

SURNAMES = """Abernathy Bakshi Castellano Dlamini Eriksen Fontaine Gallagher Haddad Ivanova Jablonski
Kowalczyk Lindqvist Mbeki Nakamura Okonkwo Petrov Quiroga Rasmussen Sandoval Takahashi Underwood
Valdez Whitlock Yilmaz Zeller Achebe Brennan Carvalho Duarte Esposito Forsberg Greenholt Holm Iyer
Jovanovic Kimura Laurent Moreno Novak Oyelaran Pham Ridley Solberg Tanaka Vasquez Winslow""".split()

TOWNS = ["Larkfield", "Brindlemoor", "Port Avel", "Kessington", "Marrow Bay", "Eastholm",
         "Tarrin Falls", "Oakhaven", "Velmont", "Crestwick", "Dunmore Ridge", "Saltcombe",
         "Fenwick Cross", "Alder Point", "Greywater", "Hollin Vale", "Redcastle Springs",
         "Norbury Heath", "Wrenford", "Stillbrook", "Calloway", "Mirren", "Thornbury Quay",
         "Ashgrove", "Elderwick", "Pinecrest", "Harrowmere", "Silverlake Junction", "Kingsmere",
         "Lowmoor", "Bramblecote", "Quillon", "Saint Orrin", "Westerby", "Coldharbour Mill"]

COMPANIES = ["Northwind Textiles", "Bluefin Logistics", "Copperleaf Foods", "Halden Robotics",
             "Brightwater Solar", "Marlowe and Finch Publishing", "Juniper Health",
             "Tallstone Construction", "Orchid Bay Software", "Redfern Bicycles",
             "Kestrel Air Services", "Greenbarrow Dairy", "Lumen Lamps", "Atlas Ceramics",
             "Quayside Coffee Roasters", "Pemberton Analytics", "Silvergate Insurance",
             "Foxglove Pharmacy", "Ironbark Furniture", "Blue Heron Ferries"]

INSTITUTES = ["Westbrook University", "the Halden Institute of Technology", "Saint Orrin College",
              "the Marrow Bay Marine Station", "the Northern Soil Research Centre",
              "Kessington Medical School", "the Alder Point Observatory",
              "the Institute for Coastal Studies"]

MONTHS = """January February March April May June July August September October November
December""".split()
WEEKDAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()

LANGUAGES = ["Python", "JavaScript", "C", "Rust", "Java", "Go", "TypeScript", "C++", "Ruby",
             "Kotlin"]


def person(rng: random.Random) -> str:
    return f"{rng.choice(NAMES)} {rng.choice(SURNAMES)}"


def number_list(rng: random.Random) -> str:
    return ", ".join(str(rng.randint(1, 60)) for _ in range(rng.randint(5, 9)))


def fraction(rng: random.Random) -> str:
    k, a, b = rng.randint(2, 12), rng.randint(1, 9), rng.randint(2, 13)
    return f"{k * a}/{k * b}"


def quadratic(rng: random.Random) -> str:
    """x^2 + bx + c with whole roots, written out."""
    r, s = rng.choice([-1, 1]) * rng.randint(1, 9), rng.choice([-1, 1]) * rng.randint(1, 9)
    b, c = -(r + s), r * s
    text = "x^2"
    if b:
        text += f" {'+' if b > 0 else '-'} {abs(b) if abs(b) != 1 else ''}x"
    if c:
        text += f" {'+' if c > 0 else '-'} {abs(c)}"
    return text


def sequence(rng: random.Random) -> str:
    """The first terms of a number sequence with a simple rule."""
    a, d, kind = rng.randint(1, 12), rng.randint(2, 9), rng.randrange(6)
    if kind == 0:
        terms = [a + d * i for i in range(6)]
    elif kind == 1:
        r = rng.randint(2, 3)
        terms = [(a % 5 + 1) * r ** i for i in range(6)]
    elif kind == 2:
        terms = [i * i + a for i in range(1, 7)]
    elif kind == 3:
        terms = [a]
        for i in range(5):
            terms.append(terms[-1] + d + i)
    elif kind == 4:
        terms = [a, a + d]
        while len(terms) < 7:
            terms.append(terms[-1] + terms[-2])
    else:
        terms = [a * 100 - d * i * i for i in range(6)]
    return ", ".join(str(t) for t in terms[: rng.randint(5, 6)])


PUZZLE_KINDS = [
    ("colour", ["red", "green", "yellow", "purple", "orange"]),
    ("fruit", ["mango", "pear", "cherry", "plum", "apricot"]),
    ("season", ["spring", "summer", "autumn", "winter"]),
    ("board game", ["chess", "draughts", "backgammon", "Scrabble", "Go"]),
    ("school subject", ["history", "chemistry", "art", "geography", "music"]),
    ("ice-cream flavour", ["pistachio", "vanilla", "lemon", "chocolate", "strawberry"]),
    ("instrument", ["the cello", "the trumpet", "the flute", "the drums", "the harp"]),
    ("pet", ["a hamster", "a parrot", "a tortoise", "a ferret", "a goldfish"]),
    ("hobby", ["knitting", "rock climbing", "birdwatching", "pottery", "chess problems"]),
    ("planet", ["Mars", "Jupiter", "Saturn", "Venus", "Neptune"]),
    ("breakfast", ["porridge", "toast", "pancakes", "fruit salad", "eggs"]),
    ("car", ["a blue van", "a red hatchback", "a white estate", "a black coupe"]),
]


def matching_puzzle(rng: random.Random) -> str:
    """Three or four people, as many things, and just enough clues to match them."""
    kind, things = rng.choice(PUZZLE_KINDS)
    n = rng.choice([3, 3, 4]) if len(things) >= 4 else 3
    people, things = rng.sample(NAMES, n), rng.sample(things, n)
    *direct, j, k = rng.sample(range(n), n)
    likes = ["'s favourite {kind} is {thing}", " likes {thing} best", " picks {thing} every time"]
    dislikes = [" does not like {thing}", " never chooses {thing}", " can't stand {thing}"]
    clues = [people[i] + rng.choice(likes).format(kind=kind, thing=things[i]) for i in direct]
    clues.append(people[j] + rng.choice(dislikes).format(thing=things[k]))
    rng.shuffle(clues)
    names = ", ".join(people[:-1]) + f" and {people[-1]}"
    options = ", ".join(things[:-1]) + f" or {things[-1]}"
    question = rng.choice(["Who likes which?", f"Match each person to their {kind}.",
                           f"What is each person's favourite {kind}? Explain how you know."])
    return (f"{names} each have a different favourite {kind}: {options}. "
            + ". ".join(clues) + f". {question}")


COMPARISONS = [
    ("is taller than", "is shorter than", "Who is the tallest?", "Who is the shortest?"),
    ("is older than", "is younger than", "Who is the oldest?", "Who is the youngest?"),
    ("has more stamps than", "has fewer stamps than", "Who has the most stamps?",
     "Who has the fewest stamps?"),
    ("finished the race ahead of", "finished the race behind", "Who won the race?",
     "Who came last?"),
    ("woke up earlier than", "woke up later than", "Who woke up first?", "Who woke up last?"),
    ("lives farther from the station than", "lives closer to the station than",
     "Who lives farthest from the station?", "Who lives closest to the station?"),
    ("scored more goals than", "scored fewer goals than", "Who scored the most goals?",
     "Who scored the fewest goals?"),
]


def ordering_puzzle(rng: random.Random) -> str:
    """A chain of comparisons, in shuffled order, and a question about its ends."""
    more, less, most, least = rng.choice(COMPARISONS)
    people = rng.sample(NAMES, rng.randint(3, 5))
    clues = [f"{a} {more} {b}" if rng.random() < 0.5 else f"{b} {less} {a}"
             for a, b in zip(people, people[1:])]
    rng.shuffle(clues)
    question = rng.choice([most, least, "Put them all in order and explain your reasoning."])
    return "; ".join(clues) + f". {question}"


def ingredients(rng: random.Random) -> str:
    items = rng.sample(POOLS["ingredient"], rng.randint(3, 5))
    return ", ".join(items[:-1]) + f" and {items[-1]}"


# ----------------------------------------------------------------------------------------------
# passages: the first sentence of a topic opens it; a random subset of the rest follows in order

PASSAGE_TOPICS = [
    [  # a town council decision
        "At its meeting on {weekday1} evening, the {town1} town council voted {yes:5..9} to "
        "{no:1..4} to turn the old bus depot on Mill Street into a covered market.",
        "The project is expected to cost about {cost:2..9}.{cost_dec:1..9} million dollars, "
        "most of it paid for by a regional grant.",
        "Councillor {person1}, who proposed the plan, said the town had lacked a central "
        "meeting place since the department store closed {gap:4..15} years ago.",
        "Opponents argued that the money would be better spent repairing roads, and "
        "{person2}, who runs a hardware shop nearby, worried about parking.",
        "Under the plan, around {stalls:30..80} stalls will be available to local farmers, "
        "bakers and craftspeople, with lower rents for the first year.",
        "A survey of {surveyed:300..1200} residents last spring found that {pct:55..85} percent "
        "would visit a market at least once a month.",
        "Building work is due to begin in {month1} and should take about {build:8..18} months.",
        "The depot's brick facade, built in {year:1890..1935}, will be kept, while the metal "
        "sheds behind it will be replaced with a timber roof and solar panels.",
        "The council also agreed to add {racks:20..60} bicycle racks and a new pedestrian "
        "crossing outside the entrance.",
        "Traders will be chosen by a panel that includes two residents picked at random from "
        "the electoral roll.",
        "{person2} said after the vote that the decision was disappointing but that the "
        "campaign for a small car park on the empty lot next door would go on.",
        "The market will open six days a week, with a late opening until 9 pm on "
        "{weekday2}s during the summer.",
        "Residents can see the drawings at the library until the end of {month2} and leave "
        "written comments there.",
        "A similar market in neighbouring {town2} now employs about {jobs:40..120} people and "
        "draws visitors from across the county.",
    ],
    [  # a company's results
        "{company1} reported on {weekday1} that its sales rose by {growth:3..19} percent in the "
        "last quarter, to {sales:40..400} million dollars.",
        "Most of the growth came from {market1}, where the firm opened {stores:3..12} new "
        "branches during the year.",
        "Chief executive {person1} said that demand had been stronger than expected, helped by "
        "a mild winter and lower transport costs.",
        "Profits, however, fell slightly, because the company spent heavily on a new warehouse "
        "outside {town1}.",
        "The new warehouse, which cost about {wh:20..90} million dollars, is expected to cut delivery "
        "times by {days:1..3} days once it is fully running.",
        "The company employs about {staff:800..6000} people, around {pct:10..30} percent of them "
        "part time.",
        "In {month1} it agreed a new pay deal with staff that raises wages by {pay:2..7} percent "
        "over two years.",
        "Analysts at {company2} said the results were solid but warned that rising interest "
        "rates could slow spending in the coming months.",
        "Shares in the firm rose {share:1..6} percent in early trading after the announcement.",
        "The firm also said it would stop using single-use plastic packaging by the end of next "
        "year, a promise first made by its founder, {person2}.",
        "A small online shop it bought last year has not yet made a profit, and the board will "
        "review its future in {month2}.",
        "The company expects sales for the full year to land between {low:150..300} and "
        "{high:310..500} million dollars.",
        "The company will publish its next report in the autumn, with plans for a second "
        "warehouse in {town2}.",
    ],
    [  # a research finding
        "Researchers at {institute1} have found that {animal1} living near busy roads change "
        "their behaviour in ways that may affect their survival.",
        "The team, led by Dr {surname1}, tracked {count:40..220} animals for {months:6..30} "
        "months using small radio tags.",
        "Animals near traffic were active about {pct:15..45} percent later in the evening than "
        "those in quieter areas.",
        "Animals near traffic also travelled shorter distances, staying within roughly {dist:200..900} metres "
        "of their nests.",
        "Dr {surname1} said the shift might help them avoid noise but could leave less time to "
        "find food before dark.",
        "The study compared sites around {town1}, where a new ring road opened in "
        "{year:2008..2019}, with a nature reserve about {km:15..60} kilometres away.",
        "A second group of scientists, at {institute2}, has seen a similar pattern in songbirds.",
        "The researchers caution that the sample is small and that weather may have played a "
        "part in some of the changes.",
        "Local volunteers, including retired teacher {person1}, helped by counting animals at "
        "dawn each {weekday1}.",
        "The work was paid for by a grant of {grant:50..400} thousand dollars from a wildlife "
        "charity.",
        "The team now plans to test whether quieter road surfaces make a difference.",
        "The findings were published in {month1} in a journal on animal behaviour.",
        "Planners in {town1} have said they will consider the results when they design the "
        "next stretch of road.",
    ],
    [  # a travel diary
        "We reached {town1} on a grey {weekday1} afternoon after a {hours:3..9}-hour train ride "
        "along the coast.",
        "Our guesthouse, run by a cheerful host named {name1}, sat above a bakery, so every "
        "morning began with the smell of warm bread.",
        "On the first day we walked the cliff path to {town2}, about {km:6..18} kilometres, and "
        "saw seals resting on the rocks below.",
        "Lunch was a bowl of fish soup that cost only {price:6..14} dollars and was easily the "
        "best meal of the trip.",
        "The next morning it rained so hard that we spent three hours in the town museum, which "
        "turned out to be far more interesting than we expected.",
        "The town museum's main room tells the story of a shipwreck in {year:1820..1910}, when local fishermen "
        "rescued {rescued:20..60} passengers in a storm.",
        "In the evening {name2}, a fisherman we met at the harbour, took us out in a small boat to "
        "watch the sunset.",
        "An old fisherman told us that the fishing fleet had shrunk from {boats:40..90} boats to just "
        "{left:5..15} within living memory.",
        "On our last day we hired bicycles and rode inland through fields of barley to a "
        "ruined castle on a hill.",
        "The climb to the castle was steep, but the view over the bay made it worth every minute.",
        "If we return, we will stay longer and come in {month1}, when the local music festival "
        "takes place.",
        "Getting around was easy: a local bus runs every {bus:20..60} minutes between the "
        "villages.",
        "The only disappointment was the famous lighthouse, which was closed for repairs.",
    ],
    [  # a school event
        "{school1} held its first science fair on {weekday1}, with {projects:30..90} projects "
        "made by pupils aged {age:9..12} to 16.",
        "The winning entry, by {name1} and {name2}, tested which home-made filter cleaned muddy "
        "water best, using sand, charcoal and gravel.",
        "Second place went to a project that measured how quickly different bread rolls grew "
        "mould in a warm cupboard.",
        "Head teacher {person1} said the fair had taken {weeks:6..14} weeks to organise and "
        "relied on more than {volunteers:15..50} parent volunteers.",
        "Judges included an engineer from {company1} and a nurse from the local hospital.",
        "About {visitors:200..700} people visited during the afternoon, many of them "
        "grandparents.",
        "Several younger pupils built model volcanoes, and one of them erupted rather more than "
        "planned, covering a table in red foam.",
        "The school raised {raised:400..2500} dollars from cake sales, which will go towards "
        "new microscopes.",
        "{name3}, aged {age3:10..15}, said that explaining a project on magnets to visitors had "
        "been more fun than winning a prize.",
        "Teachers hope to make the fair a yearly event and to invite other schools from around "
        "{town1}.",
        "Next year's theme will be energy, chosen by a vote among the pupils.",
        "A short film of the day will be shown at the school's open evening in {month1}.",
        "The library has put the winning projects on display until the end of term.",
    ],
    [  # a festival announcement
        "The {town1} Lantern Festival will return on the {day:1..28}th of {month1} after a "
        "break of {gap:2..5} years.",
        "Organisers expect around {crowd:3..15} thousand visitors over the weekend.",
        "The highlight will be a parade of {lanterns:200..800} paper lanterns, many made by "
        "local schoolchildren in workshops during the previous month.",
        "Festival director {person1} said the team had kept ticket prices low, at {price:5..15} "
        "dollars for adults and free for children under 12.",
        "Food stalls will line the riverbank, with dishes from more than {cuisines:10..25} "
        "countries.",
        "Music will run on two stages, including a performance by the {town2} Brass Band, which "
        "was founded in {year:1880..1950}.",
        "To reduce traffic, extra buses will run every {bus:10..20} minutes from the station, "
        "and the main bridge will be closed to cars.",
        "Volunteers are still needed to help with litter picking and first aid, and can sign up "
        "at the town hall.",
        "Last time the festival was held, heavy rain forced the parade to be cut short, so this "
        "year a covered route through the old market has been planned as a backup.",
        "All lanterns will use battery lights rather than candles, following advice from the "
        "fire service.",
        "Local hotels report that they are already almost fully booked for the weekend.",
        "A quiet area with soft seating will be available for visitors who find crowds "
        "difficult.",
        "The festival ends on Sunday evening with a short firework display over the water.",
    ],
    [  # local history
        "{town1} began as a small fishing village, and for most of its history fewer than "
        "{early:200..600} people lived there.",
        "Everything changed in {year1:1820..1860}, when a wool merchant named {person1} built a "
        "water-powered mill on the river.",
        "Within twenty years the mill employed {workers:300..900} people, and rows of brick "
        "cottages were built to house them.",
        "A railway line reached the town in {year2:1865..1890}, linking it to the port at "
        "{town2}.",
        "The mill's owners also paid for a school and a reading room, which was unusual at the "
        "time.",
        "Working conditions were hard, however, and in {year3:1891..1910} the workers went on "
        "strike for {strike:3..9} weeks over pay and hours.",
        "A long strike by the mill workers ended with a shorter working day, a victory that is still remembered with a "
        "plaque in the market square.",
        "During the following decades the town's population grew to about {pop:5..20} thousand.",
        "The mill finally closed in {year4:1960..1985}, when cheaper cloth from abroad made it "
        "unprofitable.",
        "After the closure the mill building stood empty for some years, and many young people left to find work "
        "elsewhere.",
        "Today the old mill houses flats, a small museum and a cafe, and the old water wheel has been "
        "restored.",
        "Historian {person2}, who wrote a book about the town, says its story mirrors that of "
        "many places that grew around a single industry.",
        "The museum's collection includes pay books, tools and letters written by mill workers.",
    ],
    [  # a product review
        "I bought the {gadget1} about {weeks:3..12} weeks ago to replace an older model that "
        "had finally stopped working.",
        "The {gadget1} cost {price:40..300} dollars, which is a little more than similar products, but the "
        "reviews were good.",
        "Setting it up took about {minutes:10..40} minutes, and the instructions were clear, "
        "though the print was tiny.",
        "The best thing about it is how quiet it is; I can use it while someone sleeps in the "
        "next room.",
        "The battery lasts around {hours:5..20} hours, which is less than the box claims but "
        "still enough for a normal day.",
        "Build quality feels solid, although the plastic lid scratches easily.",
        "My partner, {name1}, likes the simple buttons, which are easy to use without reading "
        "the manual.",
        "I contacted customer support once, when an update failed, and they replied within "
        "{reply:2..24} hours with a fix that worked.",
        "The {gadget1} weighs about {weight:1..4} kilograms, so it is easy to move between rooms.",
        "The main drawback is the app, which asks for far too many permissions and keeps "
        "sending notifications.",
        "The warranty covers {years:1..3} years, and spare parts are sold on the maker's "
        "website.",
        "Overall, I would give it {stars:3..5} out of 5 stars and would recommend it to anyone "
        "who values a quiet, reliable machine.",
        "If the price drops during the sales, it would be an easy choice.",
    ],
    [  # a storm and a flood
        "Heavy rain on {weekday1} night caused the river in {town1} to burst its banks for the "
        "first time since {year:1975..2012}.",
        "About {homes:30..250} homes were flooded, and around {evac:100..900} people spent the "
        "night in the sports hall.",
        "More than {rain:60..150} millimetres of rain fell in twelve hours, roughly what the "
        "area usually gets in {months:1..3} months.",
        "Firefighters rescued {rescued:5..30} people from cars caught on a flooded road near "
        "{town2}.",
        "No one was seriously hurt, although one firefighter was treated for a minor hand "
        "injury.",
        "Mayor {person1} thanked volunteers who filled sandbags through the night and said the "
        "town would ask for emergency funding.",
        "Power was cut to about {power:1..6} thousand homes for several hours.",
        "Schools stayed closed on {weekday2} while engineers checked two old bridges.",
        "Local shop owner {person2} said the water in the shop reached knee height within "
        "twenty minutes.",
        "The flood defences built in {built:1990..2015} held in the town centre but were "
        "overtopped further downstream.",
        "Forecasters expect drier weather for the rest of the week, though more rain may arrive "
        "at the weekend.",
        "Residents are advised to boil tap water until tests confirm that it is safe.",
        "The council has opened a helpline for people who need help with cleaning and "
        "temporary housing.",
    ],
    [  # a sports match
        "{team1} beat {team2} {home:2..5} to {away:0..1} on {weekday1} in front of a crowd of "
        "about {crowd:4..30} thousand.",
        "The visitors started brightly and hit the post in the {early:3..12}th minute.",
        "The deadlock was broken just before half-time, when {name1} scored with a low shot "
        "from the edge of the area.",
        "After the break the home side took control, and {name2} added a second goal with a "
        "header from a corner.",
        "Goalkeeper {name3} made several fine saves, including one from a penalty in the "
        "{pen:55..80}th minute.",
        "Coach {person1} praised the team's fitness and said the extra training sessions in "
        "{month1} had paid off.",
        "The win lifts the team to {place:2..6}th place in the league, {points:2..9} points "
        "behind the leaders.",
        "One player limped off with an ankle injury and is expected to miss the next "
        "{games:2..5} games.",
        "Fans had travelled from {town1} despite a rail strike, many of them in shared minibuses.",
        "The stadium's new roof, finished last year, kept most of the crowd dry when a heavy "
        "shower swept in.",
        "The two teams meet again in the cup in {month2}.",
        "The win was the home side's {streak:3..8}th in a row.",
        "The visiting coach admitted that his team had tired badly in the final twenty minutes.",
    ],
    [  # a museum exhibition
        "A new exhibition at the {town1} Museum of Everyday Things looks at how people kept "
        "food cold before the electric fridge.",
        "The exhibition opens on the {day:1..28}th of {month1} and runs for {weeks:8..20} weeks.",
        "Curator {person1} spent {years:2..4} years collecting objects for the show, from "
        "ice-house tools to early iceboxes lined with tin.",
        "One room recreates a kitchen from around {year:1900..1935}, complete with a wooden "
        "icebox and a block of fake ice.",
        "Visitors can also try lifting an ice block of the size that was once delivered to "
        "homes by horse and cart.",
        "Letters from a {town2} ice merchant describe winters when the lakes did not freeze and "
        "ice had to be shipped from the north.",
        "The exhibition includes interviews with older residents, among them {person2}, who "
        "remembers the family's first fridge arriving in the 1950s.",
        "Entry costs {price:4..12} dollars, with free admission on the first {weekday1} of "
        "each month.",
        "Schools can book guided visits, and a family trail with puzzles has been designed for "
        "children.",
        "The museum received {visitors:20..80} thousand visitors last year, its highest number "
        "so far.",
        "A series of evening talks will cover food safety, cooling technology and the history "
        "of ice cream.",
        "Some of the objects are on loan from private collectors and have never been shown "
        "in public before.",
    ],
    [  # a community garden
        "Volunteers in {town1} have turned an empty car park behind the library into a "
        "community garden with {beds:20..60} raised beds.",
        "The idea came from {person1}, a retired gardener who had watched the site sit unused "
        "for {gap:5..12} years.",
        "About {members:40..150} households now rent a bed for {fee:10..40} dollars a year, and "
        "a waiting list has opened.",
        "Local company {company1} donated timber and soil, and pupils from a nearby school "
        "built the compost bins.",
        "Last season the garden produced more than {kg:300..900} kilograms of vegetables, "
        "some of which were given to a food bank.",
        "A rain-water tank collects water from the library roof, so the garden rarely needs "
        "mains water.",
        "Workshops on pruning, composting and seed saving are held on {weekday1} mornings.",
        "{person2}, who moved to the area last year, said the garden was the easiest way to "
        "get to know the neighbours.",
        "There have been a few problems: slugs ate most of the lettuce, and a shed was broken "
        "into in {month1}.",
        "The group now plans to add benches, a wheelchair-accessible path and a small pond.",
        "The garden group has applied for a grant of {grant:2..15} thousand dollars to pay for the work.",
        "A harvest party is held every autumn, with soup made from the garden's own produce.",
    ],
    [  # a health campaign
        "The clinic in {town1} has started a campaign to get more adults walking for "
        "{minutes:20..40} minutes a day.",
        "Doctor {person1}, who leads the project, said that many patients find gyms expensive "
        "or intimidating.",
        "The campaign marks out {routes:5..12} walking routes around the town, each with "
        "distance signs every half kilometre.",
        "Free group walks leave the clinic at {hour:7..10} am on weekdays, led by trained "
        "volunteers.",
        "In the first {weeks:6..16} weeks, around {joined:150..600} people joined at least "
        "one walk.",
        "A small study of {studied:40..120} participants found that their average resting "
        "heart rate fell slightly over three months.",
        "Participants also reported sleeping better and feeling less lonely.",
        "{person2}, aged {age:60..84}, said the walks were a reason to leave the house "
        "every morning.",
        "The clinic hopes to add a route suitable for wheelchairs and pushchairs by {month1}.",
        "The scheme costs about {cost:5..30} thousand dollars a year, mostly for training "
        "volunteers and printing maps.",
        "Other clinics in the region, including one in {town2}, have asked for advice on "
        "starting similar schemes.",
        "Doctors stress that anyone with a heart condition should check with them before "
        "starting a new exercise routine.",
    ],
    [  # a new ferry service
        "A new electric ferry between {town1} and {town2} made its first crossing on "
        "{weekday1}, carrying {passengers:60..200} passengers.",
        "The boat replaces a diesel ferry that had served the route for {served:25..45} years.",
        "The crossing takes about {minutes:15..40} minutes, roughly the same as before, but the "
        "new boat is much quieter.",
        "The new ferry was built by {company1} at a cost of {cost:4..15} million dollars, shared between "
        "the two towns and the regional government.",
        "The batteries are charged at each end during the {charge:8..15}-minute turnaround.",
        "Captain {person1}, who has worked on the route for {years:10..30} years, said the "
        "crew had trained for several weeks on the new controls.",
        "Fares will stay at {fare:3..9} dollars for a single crossing, with discounts for "
        "regular commuters.",
        "Some cyclists complained that the bike racks on board are too small.",
        "The operator says it will add a second electric boat within {within:2..4} years if "
        "passenger numbers keep growing.",
        "About {yearly:150..600} thousand trips were made on the route last year.",
        "The old ferry will be sold to a museum in {town3}.",
        "Residents living near the harbour welcomed the end of engine noise early in the "
        "morning.",
    ],
]


def passage(rng: random.Random, low: int, high: int, paragraphs: bool = False) -> str:
    """A topic's opening sentence and a random subset of the rest, in order, filled once
    (names stay the same throughout), of about ``low`` to ``high`` words."""
    topic = rng.choice(PASSAGE_TOPICS)
    memo: dict = {}
    opener, body = fill(topic[0], rng, memo), topic[1:]
    target = rng.randint(low, high)
    order = rng.sample(range(len(body)), len(body))
    chosen, n_words = {}, len(opener.split())
    for i in order:
        if n_words >= target:
            break
        sentence = fill(body[i], rng, memo)
        if n_words + len(sentence.split()) > high + 20:
            continue
        chosen[i] = sentence
        n_words += len(sentence.split())
    sentences = [opener] + [chosen[i] for i in sorted(chosen)]
    if not paragraphs or len(sentences) < 6:
        return " ".join(sentences)
    cuts = sorted(rng.sample(range(2, len(sentences) - 2), rng.randint(1, 2)))
    parts = [sentences[a:b] for a, b in zip([0, *cuts], [*cuts, len(sentences)])]
    return "\n\n".join(" ".join(p) for p in parts if p)

# ----------------------------------------------------------------------------------------------
# math: numbers come from the rng

MATH_FOLLOW = [
    "Can you check the answer a different way?",
    "Explain each step as if I were twelve years old.",
    "What would the answer be if all the numbers were doubled?",
    "Make up a similar problem for me to practise, but don't solve it.",
    "Which step in this problem is the easiest to get wrong?",
    "Could you show the working more briefly, in just a few lines?",
    "Is there a quicker mental shortcut for this kind of question?",
    "How would you estimate the answer roughly before calculating it?",
    "Now write the solution as a short explanation in words, without symbols.",
    "What general rule or formula did you use here?",
]

MATH_SHORT = [
    "Work out {a:12..95}% of {b:40..900}.",
    "What is {a:101..999} multiplied by {b:11..99}? Show the long multiplication.",
    "Divide {a:1000..9999} by {b:3..19} and give the remainder.",
    "A cyclist rides at {a:12..30} km/h for {b:2..5} hours and {c:10..50} minutes. How far "
    "does she travel?",
    "Solve the equation {a:2..9}x + {b:3..40} = {c:50..150}.",
    "Solve for n: {a:2..12}(n - {b:1..9}) = {c:20..120}.",
    "Solve the pair of equations x + y = {a:10..40} and x - y = {b:2..9}.",
    "A rectangle is {a:3..25} m long and {b:2..15} m wide. Find its area and its perimeter.",
    "A circle has a radius of {r:2..30} cm. What are its circumference and area? Use 3.14 "
    "for pi.",
    "A jacket priced at ${p:40..250} is on sale for {d:10..60/5}% off. How much does it cost "
    "now?",
    "A ticket that used to cost ${a:20..60} now costs ${b:61..99}. By what percentage did the "
    "price go up?",
    "{name1} saves ${a:5..40} every week. How many weeks will it take {name1} to save "
    "${b:300..1500/10}?",
    "Find the mean, median and range of these numbers: {number_list}.",
    "A right-angled triangle has shorter sides of {a:3..20} cm and {b:4..24} cm. How long is "
    "the longest side?",
    "What is the least common multiple of {a:4..30} and {b:6..45}?",
    "Find the greatest common divisor of {a:24..240} and {b:18..180}, and show your method.",
    "Convert {a:2..95} miles into kilometres, taking one mile as 1.609 km.",
    "Simplify the fraction {fraction} to its lowest terms.",
    "A soup recipe for {a:4..6} people uses {b:200..600/50} g of lentils. How many grams do I "
    "need to feed {c:7..15} people?",
    "A water tank holds {a:200..2000/50} litres and drains at {b:5..40} litres per minute. How "
    "long does it take to empty?",
    "Two towns are {d:200..600/10} km apart. Two cars leave at the same time and drive toward "
    "each other at {a:60..110} km/h and {b:50..100} km/h. When do they meet?",
    "Expand and simplify ({a:2..9}x + {b:1..9})({c:2..7}x - {d:1..9}).",
    "Factorise {quadratic}.",
    "Solve {quadratic} = 0.",
    "If {a:3..9} notebooks cost ${b:6..30}, how much do {c:10..25} notebooks cost?",
    "A class has {a:18..35} students, and {b:20..80/5}% of them cycle to school. How many "
    "students is that, to the nearest whole number?",
    "Add {a:1..7}/{b:2..9} and {c:1..7}/{d:3..11}, and give the answer in lowest terms.",
    "A box measures {a:5..40} cm by {b:5..30} cm by {c:3..25} cm. What is its volume in litres?",
    "A savings account pays {r:2..6}% interest a year, compounded yearly. How much will "
    "${p:500..5000/100} grow to after {n:2..5} years?",
    "A car uses {a:5..9} litres of fuel per 100 km. How much fuel does a {b:150..900/10} km "
    "trip need?",
    "What is the sum of all whole numbers from 1 to {n:20..300}?",
    "Work out {a:21..99} squared minus {b:11..20} squared without a calculator.",
    "The angles of a triangle are in the ratio {a:1..5}:{b:2..6}:{c:3..8}. Find each angle.",
    "A bag holds {r:2..9} red, {b:2..9} blue and {g:1..7} green marbles. If I take one at "
    "random, what is the probability that it is not blue?",
    "Two fair dice are rolled. What is the probability that the total is exactly {t:2..12}?",
    "{name1} reads {a:12..45} pages a day. How many days will it take {name1} to finish a book "
    "of {b:240..720/10} pages?",
    "Write {a:40..999} in binary.",
    "Find the slope of the line through ({a:-5..5}, {b:-5..9}) and ({c:6..12}, {d:-3..15}).",
    "A shop buys a lamp for ${a:20..80} and sells it for ${b:90..160}. What is the profit as a "
    "percentage of the cost?",
    "If {a:3..8} painters can paint a fence in {b:6..15} hours, how long would {c:9..16} "
    "painters take at the same rate?",
    "Convert {t:-20..40} degrees Celsius to Fahrenheit.",
    "On a map with a scale of 1:{s:25000..100000/5000}, two villages are {d:3..18} cm apart. "
    "How far apart are they in real life?",
    "A runner goes out {a:3..12} km at {b:8..14} km/h and comes back at {c:6..10} km/h. What "
    "is her average speed for the whole run?",
    "What is {a:2..9} to the power of {b:3..6}?",
    "Estimate the square root of {a:20..500} to one decimal place, and explain how.",
    "A phone plan costs ${a:10..30} a month plus ${b:1..5} for every gigabyte of data. Write a "
    "formula for the monthly cost, then find the cost for {g:2..20} gigabytes.",
    "The population of a village grows by {r:2..9}% each year. If it is {p:1000..9000/100} "
    "now, what will it be in {n:2..4} years?",
    "Find three consecutive whole numbers that add up to {s:30..300/3}.",
    "A rope {a:10..60} m long is cut into two pieces, one {b:2..9} m longer than the other. "
    "How long is each piece?",
    "What is {a:1..9}.{b:1..9} divided by 0.{c:2..8}?",
    "{name1} is {a:3..9} years older than {name2}. Together their ages add up to "
    "{s:30..90}. How old is each of them?",
    "How many seconds are there in {d:2..9} days?",
    "A square has sides of {a:4..30} m. How long is its diagonal, to two decimal places?",
    "Is {n:101..999} a prime number? Explain how you checked.",
    "Find the next three multiples of {a:7..19} after {b:100..300}.",
    "A bakery sells muffins at ${a:2..4}.{c:10..95/5} each or a box of six for "
    "${b:11..19}. How much is saved per muffin by buying the box?",
]

MATH_LONG = [
    "Walk me through, in detail, how to solve {quadratic} = 0 in three different ways: by "
    "factorising, by completing the square and with the quadratic formula.",
    "Write a detailed, step-by-step solution to this problem and explain the reasoning behind "
    "each step: a cinema sells adult tickets for ${a:8..14} and child tickets for "
    "${c:4..7}. On {weekday1} it sold {n:60..200} tickets and took ${t:600..1900/10}. How many "
    "of each kind were sold?",
    "Explain, with several worked examples, how compound interest works. Use a deposit of "
    "${p:1000..9000/500} at {r:2..7}% a year and show the balance for each of the first "
    "{n:4..6} years.",
    "Give a thorough explanation of how to find the area of a triangle when you know the "
    "coordinates of its corners, and work through the example ({a:0..4}, {b:0..4}), "
    "({c:5..12}, {d:1..6}), ({e:2..9}, {f:7..15}).",
    "Teach me the basics of probability in a long, friendly lesson, using {r:2..6} red and "
    "{b:3..8} blue counters in a bag as the running example.",
    "Write a detailed guide to working with percentages: finding a percentage of a number, "
    "percentage increase and decrease, and reverse percentages. Use prices around "
    "${p:20..200} in your examples.",
    "Explain in depth why the sum of the numbers from 1 to n is n(n + 1)/2, giving at least "
    "two different proofs, and check the formula for n = {n:10..60}.",
]

# ----------------------------------------------------------------------------------------------
# reasoning

REASONING_FOLLOW = [
    "Can you check your answer by working through it a second way?",
    "Explain your reasoning to a ten-year-old.",
    "Which single fact was most important in reaching your answer?",
    "How would the answer change if one of the facts were different?",
    "Summarize your reasoning in three short steps.",
    "Make up a similar puzzle for me to try, without giving the answer.",
    "Could someone reasonably reach a different conclusion? Why or why not?",
    "What is the most common mistake people make with this kind of problem?",
    "Is there any information missing that would make you more confident?",
]

REASONING_SHORT = [
    "{matching_puzzle}",
    "{matching_puzzle}",
    "{ordering_puzzle}",
    "{ordering_puzzle}",
    "Find the next two terms of {sequence}, and describe the rule you used.",
    "Here is the start of a number pattern: {sequence}. What rule produces it?",
    "If {n:10..60} days from now is a {weekday1}, what day of the week is it today?",
    "All {syl1} are {syl2}, and some {syl2} are {syl3}. Does it follow that some {syl1} "
    "are {syl3}? Explain.",
    "No {syl1} are {syl3}, and all {syl4} are {syl1}. What can we say about {syl4} and "
    "{syl3}?",
    "{flawed_argument} What is wrong with this reasoning?",
    "Spot the flaw in this argument: {flawed_argument}",
    "{correlation} Give three explanations that don't involve one thing causing the other.",
    "You have {n:8..27} coins that look the same, but one is slightly heavier. With a "
    "balance scale, what is the smallest number of weighings that always finds it?",
    "On an island, knights always tell the truth and knaves always lie. {name1} says, "
    "\"{name2} and I are both knaves.\" What are {name1} and {name2}?",
    "On an island of truth-tellers and liars, {name1} says \"{name2} is a liar\" and {name2} "
    "says \"{name1} and I are the same kind.\" Who is who?",
    "Roughly how many {fermi} Walk me through your estimate.",
    "Solve this riddle: {riddle_item} What am I?",
    "Which word is the odd one out, and why: {odd_one_out}?",
    "{name1} is {name2}'s mother's only brother's son. How are they related?",
    "A clock shows {h:1..11}:{m:10..50/5}. What is the angle between the hour hand and the "
    "minute hand?",
    "{name1} has to catch a {h:6..9}:{m:10..50/10} train. The walk to the station takes "
    "{w:12..35} minutes, and getting ready takes {p:15..40} minutes. What is the latest "
    "time {name1} can get up?",
    "If it takes {a:3..8} people {b:4..12} days to build a wall, is it true that "
    "{c:10..30} people would finish in a day? Explain the assumptions involved.",
    "A family has {k:2..5} children, and each child has exactly one sister. How many girls "
    "and boys could there be?",
    "{name1} says: \"Every time I wash my car, it rains the next day.\" Is washing the car "
    "the cause? How could {name1} test it?",
    "I am thinking of a whole number between 1 and {n:50..200}. If you can only ask "
    "yes-or-no questions, what strategy finds it fastest, and how many questions is that?",
    "Three boxes are labelled apples, oranges and mixed, and every label is wrong. You may "
    "take one fruit from one box. How do you relabel all three correctly?",
    "A farmer must take a fox, a goose and a sack of grain across a river in a boat that "
    "holds only one of them at a time. How does she do it?",
    "Which weighs more: a kilogram of {heavy_thing} or a kilogram of {light_thing}? Explain.",
    "Should {name1} {decision}? List the considerations on each side and give a verdict.",
    "What is the hidden assumption in this statement: \"{assumption_claim}\"",
]

REASONING_LONG = [
    "Think this through carefully, explaining every step: {matching_puzzle}",
    "Solve this puzzle and then explain, in a few paragraphs, how you could have solved it "
    "more quickly: {ordering_puzzle}",
    "Write a detailed analysis of whether {name1} should {decision}. Cover costs, risks, "
    "what could change your mind, and end with a clear recommendation.",
    "Estimate how many {fermi} Explain your estimate in detail: break the problem into "
    "parts, state each assumption and check the final number against common sense.",
    "Write a long explanation of the difference between correlation and causation, using "
    "this example: {correlation}",
    "Explain in depth what is wrong with this argument, name the type of mistake, and write "
    "a better version of it: {flawed_argument}",
]

SYLLOGISM_TERMS = ["cats", "mammals", "pets", "teachers", "runners", "musicians", "artists",
                   "birds", "swimmers", "doctors", "chess players", "poets", "tall buildings",
                   "bridges", "old cars", "metals", "fruits", "vegetables", "islands"]

FLAWED_ARGUMENTS = [
    "My grandfather smoked every day and lived to ninety, so smoking can't be that bad.",
    "Everyone at my gym says this protein shake works, so it must be the best one.",
    "If we let students redo one test, soon they'll want to redo every test and grades will "
    "mean nothing.",
    "This restaurant is always full, so the food must be excellent.",
    "You can't trust her views on climate, because she drives a car.",
    "Either we ban all phones in school or we accept that no one will ever pay attention.",
    "I wore my lucky socks and we won, so the socks help us win.",
    "The new manager started in March and sales dropped in April, so the manager caused the "
    "drop.",
    "Nobody has proved that ghosts don't exist, so they probably do.",
    "Most successful people wake up early, so waking up early will make you successful.",
    "The expensive wine tasted better, so price is a good guide to quality.",
    "He's not an expert, so everything he said about the budget must be wrong.",
    "Crime went down after we installed the statue in the square, so the statue deters "
    "crime.",
    "We've always done it this way, so it must be the right way.",
    "If you really cared about the environment, you would never use plastic at all.",
]

CORRELATIONS = [
    "Towns with more libraries have lower crime rates.",
    "Students who eat breakfast get better marks.",
    "Ice-cream sales and drownings rise in the same months.",
    "People who own dogs report being happier than people who don't.",
    "Cities with more cyclists have fewer heart problems.",
    "Children who read more books at home know more words at school.",
    "Shops that play slow music sell more wine.",
    "Employees who work from home report fewer sick days.",
    "Countries that eat more chocolate win more science prizes.",
    "Patients who see the same doctor every time stay healthier.",
    "Houses with solar panels sell for more money.",
]

FERMI = ["piano tuners work in a city of one million people?",
         "tennis balls would fit in a school bus?",
         "slices of bread a family of four eats in a year?",
         "words a person speaks in a lifetime?",
         "litres of water a household uses in a month?",
         "steps it would take to walk across your country?",
         "leaves are on a large oak tree?",
         "cups of coffee are drunk in an office of 200 people in a year?",
         "trees there are in a small town?",
         "hairs are on a human head?",
         "letters are printed in a 300-page novel?",
         "buses are needed to run a city's bus network?"]

RIDDLES = ["I have keys but open no locks, and I have space but no room.",
           "I get wetter the more I dry.",
           "I have a face and two hands but no arms or legs.",
           "The more of me you take, the more you leave behind.",
           "I am full of holes but still hold water.",
           "I can travel around the world while staying in a corner.",
           "I have cities but no houses, forests but no trees, and water but no fish.",
           "I go up but never come down.",
           "I have a neck but no head, and I wear a cap.",
           "I can be cracked, made, told and played."]

ODD_ONE_OUT = ["violin, trumpet, cello, harp", "Mercury, Venus, Moon, Mars",
               "oak, maple, tulip, birch", "square, triangle, cube, circle",
               "copper, iron, glass, silver", "whale, shark, dolphin, seal",
               "Paris, Rome, Madrid, Sydney", "hammer, saw, nail, screwdriver",
               "run, jump, blue, swim", "2, 3, 9, 11", "salmon, trout, cod, frog",
               "wool, cotton, silk, plastic", "novel, poem, sonnet, painting"]

DECISIONS = ["take a job with a higher salary but a two-hour daily commute",
             "buy a second-hand electric car or keep an old petrol one",
             "rent a flat in the city centre or a bigger one in the suburbs",
             "spend savings on a course or keep them for emergencies",
             "adopt a puppy while working full time",
             "move abroad for a two-year contract",
             "switch from a laptop to a tablet for university",
             "repair an old washing machine or buy a new one",
             "start a small bakery with a friend"]

ASSUMPTION_CLAIMS = ["We should hire more staff because customers are waiting too long.",
                     "The new park will make the neighbourhood safer.",
                     "Let's lower prices; then we'll sell more and make more money.",
                     "He's been late three times, so he doesn't care about the job.",
                     "Online classes are worse because students can't ask questions.",
                     "A bigger team will finish the project sooner.",
                     "The film won an award, so you will enjoy it."]

# ----------------------------------------------------------------------------------------------
# coding

CODE_FOLLOW = [
    "Rewrite the function to handle empty input.",
    "Add comments explaining each step.",
    "What is the time complexity of your solution?",
    "Write two or three tests for it.",
    "How would you make it faster?",
    "Can you make the code shorter without making it harder to read?",
    "What happens if the input is very large? Would anything break?",
    "Show how the same idea would look in another programming language.",
    "Which edge cases should I watch out for?",
    "Add error handling for invalid input.",
]

CODE_EXPLAIN_FOLLOW = [
    "Can you show a short code example?",
    "When would this be a bad choice?",
    "Explain it again without any jargon.",
    "What is a common bug related to this?",
    "How would I test code that uses this?",
    "Can you compare it with an alternative approach?",
    "What should a beginner read next to learn more?",
]

CODE_SHORT = [
    "Write a {lang} function that {fn_task}.",
    "In {lang}, write a function that {fn_task}.",
    "Show me how to write a function in {lang} that {fn_task}.",
    "In {lang}, implement {data_structure}.",
    "Write a SQL query that {sql_task}",
    "Using SQL, {sql_task_imperative}",
    "Write a Bash script that {bash_task}.",
    "Give me a shell one-liner that {bash_task}.",
    "In {lang}, how do I {howto}?",
    "What is the idiomatic way to {howto} in {lang}?",
    "Explain what this code does, step by step.\n\n{code_sample}",
    "There is a bug in this code. Find it, fix it and explain the fix.\n\n{buggy_code}",
    "Write a regular expression that matches {regex_target}, and explain each part of it.",
]

CODE_EXPLAIN_SHORT = [
    "Explain {cs_concept} with a short {lang} example.",
    "What is {cs_concept}, and why is it useful?",
    "What is the difference between {cs_pair}?",
    "When should I use {tool_choice}?",
    "What does the command `{shell_command}` do?",
    "{lang_question}",
]

CODE_LONG = [
    "Write a complete {lang} program that {program_task}. Include comments that explain each "
    "part, and show an example run.",
    "Explain step by step how {algorithm} works, then implement it in {lang} and analyse its "
    "running time.",
    "Write a detailed beginner's tutorial on {tutorial_topic}, with code examples in {lang}.",
    "Design a small {lang} module that {program_task}. Describe the structure first, then "
    "write the code, then list the tests you would write.",
]

CODE_EXPLAIN_LONG = [
    "Write a long, detailed explanation of {cs_concept}, covering what it is, why it "
    "matters, common mistakes and a worked example in {lang}.",
    "Compare {cs_pair} in depth: how each works, their strengths and weaknesses, and when "
    "you would pick one over the other.",
]

FN_TASKS = [
    "reverses the order of words in a sentence",
    "counts how many vowels a string contains",
    "checks whether a string is a palindrome, ignoring spaces and punctuation",
    "returns the n-th Fibonacci number using a loop",
    "merges two sorted lists into one sorted list",
    "finds the most common element in a list",
    "converts a temperature from Celsius to Fahrenheit",
    "returns all the prime numbers below a given limit",
    "flattens a nested list of any depth",
    "groups a list of words by their first letter",
    "computes the factorial of a number without recursion",
    "checks whether a year is a leap year",
    "turns a number of seconds into hours, minutes and seconds",
    "splits a list into chunks of a given size",
    "validates that a password has at least eight characters, a digit and a capital letter",
    "counts how often each word appears in a piece of text",
    "rotates a list by k positions to the right",
    "finds the longest word in a sentence",
    "computes the average of the numbers in a list, skipping missing values",
    "converts a Roman numeral to an integer",
    "converts an integer to a Roman numeral",
    "returns the intersection of two lists without duplicates",
    "checks whether brackets in a string are balanced",
    "calculates the distance between two points on a plane",
    "returns the sum of the digits of a number",
    "removes all whitespace from a string",
    "finds the index of a target value in a sorted list using binary search",
    "transposes a matrix given as a list of rows",
    "formats a number with thousands separators",
    "returns the k largest numbers in a list",
    "generates a random password of a given length",
    "compresses a string like aaabcc into a3b1c2",
    "checks whether a number is a power of two",
    "converts snake_case names to camelCase",
    "computes the running total of a list of numbers",
    "finds the first character in a string that does not repeat",
    "checks whether a list is sorted",
    "calculates simple interest given the principal, rate and time",
    "counts the lines in a text file",
    "returns a dictionary that maps each character to its number of occurrences",
]

DATA_STRUCTURES = ["a stack with push, pop and peek", "a queue using two stacks",
                   "a singly linked list with insert and delete", "a simple binary search tree",
                   "a fixed-size ring buffer", "a min-heap", "a least-recently-used cache",
                   "a trie for storing words", "a simple hash map with chaining",
                   "a counter that tracks how many times each key is added"]

SQL_TASKS = [
    "lists the five most expensive products in a table products(id, name, price).",
    "finds customers who have not placed any orders, given tables customers(id, name) and "
    "orders(id, customer_id, total).",
    "returns the average salary per department from employees(id, name, department, salary).",
    "finds duplicate email addresses in a users(id, email) table.",
    "shows total sales per month for the year 2023 from sales(id, sold_at, amount).",
    "returns the second highest salary in employees(id, name, salary).",
    "lists all books published after 2010 with their authors, given books(id, title, year, "
    "author_id) and authors(id, name).",
    "counts how many students are enrolled in each course, including courses with no "
    "students.",
    "deletes rows older than 90 days from a log table with a created_at column.",
    "finds the top three cities by number of customers in customers(id, name, city).",
    "calculates each employee's salary as a percentage of their department's total.",
    "lists products that have never been ordered.",
]

SQL_TASKS_IMPERATIVE = [
    "how would I find the most recent order for each customer?",
    "how do I join three tables: students, enrolments and courses?",
    "how can I rank players by score within each team?",
    "how do I count distinct visitors per day from a visits(user_id, visited_at) table?",
    "how can I update the price of every product in one category by 10 percent?",
    "what's the best way to find gaps in a sequence of invoice numbers?",
]

BASH_TASKS = [
    "renames every .jpeg file in a folder to .jpg",
    "counts the lines in every .txt file in the current directory",
    "backs up a folder into a dated .tar.gz archive",
    "prints the ten largest files under a directory",
    "deletes files older than 30 days from a temporary folder",
    "checks whether a website responds and prints its status code",
    "finds every file containing the word TODO",
    "prints the disk usage of each subdirectory, sorted by size",
    "watches a log file and prints new lines that contain ERROR",
    "creates a directory for each name listed in a text file",
    "converts all file names in a folder to lowercase",
    "prints how many times each IP address appears in an access log",
]

HOWTOS = ["read a text file line by line", "sort a list of records by two keys",
          "parse a JSON string", "make an HTTP GET request", "measure how long a function takes",
          "handle an error without crashing the program", "read command-line arguments",
          "write data to a CSV file", "remove duplicates while keeping the original order",
          "run two tasks at the same time", "format a date as YYYY-MM-DD",
          "generate a random integer in a range", "check whether a file exists",
          "split a string on commas", "reverse a string", "define a constant",
          "write a unit test", "iterate over a dictionary or map"]

REGEX_TARGETS = ["a UK-style postcode", "a date written as DD/MM/YYYY", "a hexadecimal colour "
                 "code like #1a2b3c", "an email address (roughly)", "a time in 24-hour format",
                 "a US phone number with optional dashes", "a word that starts and ends with "
                 "the same letter", "a price like $12.99", "a line that contains only digits",
                 "an IPv4 address"]

CODE_SAMPLES = [
    "```python\ndef mystery(xs):\n    out = []\n    for x in xs:\n        if x not in out:\n"
    "            out.append(x)\n    return out\n```",
    "```javascript\nconst total = items\n  .filter(i => i.inStock)\n  .map(i => i.price * i.qty)"
    "\n  .reduce((a, b) => a + b, 0);\n```",
    "```sql\nSELECT city, COUNT(*) AS n\nFROM customers\nGROUP BY city\nHAVING COUNT(*) > 10\n"
    "ORDER BY n DESC;\n```",
    "```bash\nfor f in *.log; do\n  gzip \"$f\"\ndone\n```",
    "```c\nint f(int n) {\n    int s = 0;\n    while (n > 0) {\n        s += n % 10;\n"
    "        n /= 10;\n    }\n    return s;\n}\n```",
    "```rust\nfn largest(v: &[i32]) -> Option<i32> {\n    v.iter().copied().max()\n}\n```",
    "```java\npublic static boolean check(String s) {\n    return new StringBuilder(s).reverse()"
    ".toString().equals(s);\n}\n```",
    "```go\nfunc count(words []string) map[string]int {\n    m := make(map[string]int)\n"
    "    for _, w := range words {\n        m[w]++\n    }\n    return m\n}\n```",
    "```python\nwith open('data.txt') as fh:\n    rows = [line.split(',') for line in fh "
    "if line.strip()]\n```",
    "```python\nsquares = {n: n * n for n in range(1, 6)}\n```",
    "```javascript\nfunction debounce(fn, ms) {\n  let t;\n  return (...args) => {\n"
    "    clearTimeout(t);\n    t = setTimeout(() => fn(...args), ms);\n  };\n}\n```",
]

BUGGY_CODE = [
    "```python\ndef average(xs):\n    return sum(xs) / len(xs) - 1\n```",
    "```python\ndef last_item(xs):\n    return xs[len(xs)]\n```",
    "```javascript\nfor (var i = 0; i <= arr.length; i++) {\n  console.log(arr[i]);\n}\n```",
    "```python\ndef add_item(item, basket=[]):\n    basket.append(item)\n    return basket\n```",
    "```c\nint sum(int *a, int n) {\n    int s;\n    for (int i = 0; i < n; i++) s += a[i];\n"
    "    return s;\n}\n```",
    "```sql\nSELECT name, COUNT(*) FROM orders;\n```",
    "```python\ncount = 0\ndef increment():\n    count += 1\n```",
    "```java\nString a = \"hi\";\nString b = new String(\"hi\");\nif (a == b) System.out."
    "println(\"same\");\n```",
    "```bash\nif [ $name == \"admin\" ]\nthen echo welcome\nfi\n```",
    "```go\nfunc divide(a, b int) int {\n    return a / b\n}\n```",
    "```python\nwhile n > 0:\n    print(n)\nn -= 1\n```",
]

CS_CONCEPTS = ["recursion", "a closure", "memoization", "big-O notation", "an iterator",
               "immutability", "dependency injection", "a race condition", "a deadlock",
               "garbage collection", "a hash function", "polymorphism", "encapsulation",
               "unit testing", "version control branching", "a REST API", "caching",
               "lazy evaluation", "an interface", "type inference", "pattern matching",
               "an event loop", "a pure function", "tail recursion", "a callback",
               "exception handling", "a generic type", "a mutex", "pagination in an API"]

CS_PAIRS = ["a list and a tuple in Python", "let, const and var in JavaScript",
            "a process and a thread", "a stack and a queue", "SQL and NoSQL databases",
            "an array and a linked list", "compiled and interpreted languages",
            "static and dynamic typing", "TCP and UDP", "git merge and git rebase",
            "an abstract class and an interface in Java", "ownership and borrowing in Rust",
            "a pointer and a reference in C++", "breadth-first and depth-first search",
            "INNER JOIN and LEFT JOIN", "unit tests and integration tests",
            "synchronous and asynchronous code", "a shallow copy and a deep copy",
            "goroutines and operating-system threads", "a struct and a class"]

TOOL_CHOICES = ["a dictionary instead of a list", "recursion instead of a loop",
                "a database instead of a text file", "a set instead of a list",
                "an enum instead of plain strings", "a class instead of a few functions",
                "a queue in a program", "a configuration file instead of constants in code"]

SHELL_COMMANDS = ["grep -rn 'main' src/", "find . -name '*.py' -mtime -1",
                  "ps aux | sort -k3 -nr | head", "tar -xzf archive.tar.gz -C out/",
                  "chmod 644 notes.txt", "du -sh * | sort -h", "git log --oneline -n 5",
                  "sed -i 's/old/new/g' file.txt", "wc -l *.csv", "ln -s target link_name",
                  "curl -I https://example.com", "xargs -n 1 echo < names.txt"]

LANG_QUESTIONS = [
    "Why does Python have both lists and tuples?",
    "What does the `?` operator do in Rust?",
    "How do promises work in JavaScript?",
    "What is a goroutine in Go, and how do I start one?",
    "Why do I get a NullPointerException in Java, and how can I avoid it?",
    "What is a segmentation fault in C?",
    "What are Python decorators, and when are they useful?",
    "What does `async` and `await` mean in JavaScript?",
    "What is the difference between `==` and `===` in JavaScript?",
    "How does `defer` work in Go?",
    "What are lifetimes in Rust, in simple terms?",
    "What is a virtual environment in Python, and why should I use one?",
    "What does `static` mean in Java?",
    "What is the purpose of a header file in C?",
    "How do list comprehensions work in Python?",
]

PROGRAM_TASKS = [
    "keeps a to-do list in a text file, with commands to add, list and remove items",
    "simulates a simple bank account with deposits, withdrawals and a history",
    "plays a number-guessing game against the user",
    "reads a CSV of expenses and prints the total spent per category",
    "converts between metric and imperial units for length, weight and temperature",
    "checks a Sudoku grid for mistakes",
    "tracks books borrowed from a small library",
    "generates a weekly timetable from a list of tasks and durations",
    "implements tic-tac-toe for two players in the terminal",
    "computes simple statistics (mean, median, mode) for numbers typed by the user",
    "stores contacts and lets the user search them by name",
]

ALGORITHMS = ["merge sort", "quicksort", "binary search", "Dijkstra's shortest-path algorithm",
              "breadth-first search on a graph", "the sieve of Eratosthenes",
              "insertion sort", "the two-pointer technique", "dynamic programming for the "
              "coin-change problem", "a sliding-window maximum"]

TUTORIAL_TOPICS = ["reading and writing files", "error handling", "working with dates and times",
                   "writing your first tests", "organising code into modules",
                   "working with JSON data", "basic object-oriented programming",
                   "using collections like lists and maps effectively"]

# ----------------------------------------------------------------------------------------------
# writing

WRITING_FOLLOW = [
    "Now make it shorter and more formal.",
    "Rewrite it in a more playful tone.",
    "Give it a good title.",
    "Make it half as long without losing the main point.",
    "Rewrite it for a young audience.",
    "Which line are you least happy with, and how would you improve it?",
    "Change the tone so it sounds warmer and more personal.",
    "Add a stronger ending.",
    "Now write a second version from a different point of view.",
    "Cut any clichés and replace them with fresher phrases.",
]

WRITING_SHORT = [
    "Write a {poem_form} about {poem_topic}.",
    "Compose a {poem_form} that captures {poem_topic}.",
    "Write a short story about {premise}.",
    "Write a very short story, under 200 words, about {premise}.",
    "Tell a bedtime story about {premise}.",
    "Write an email {email_task}.",
    "Write a friendly but clear email {email_task}.",
    "Write a tweet {tweet_purpose}.",
    "Write three different tweets {tweet_purpose}.",
    "Write a short advert for {product}.",
    "Write a 60-word radio advert for {product}.",
    "Write the text for a shop-window sign advertising {product}.",
    "Come up with five slogans for {business}.",
    "Suggest a catchy slogan for {business} and explain why it works.",
    "Write a short speech for {occasion}.",
    "Write a toast for {toast_occasion}.",
    "Write a letter {letter_task}.",
    "Write a thank-you card message for {thanks_for}.",
    "Describe {scene} in one vivid paragraph.",
    "Write a short dialogue between {char_pair} about {dialogue_topic}.",
    "Write the opening line of a novel about {premise}, then explain why it works.",
    "Write a glowing customer review of {product}.",
    "Write a short motivational message for {audience}.",
    "Write a riddle whose answer is {riddle_answer}.",
    "Write a job advert for {job_ad}.",
    "Write a short announcement {announcement}.",
    "Write a diary entry from the point of view of {pov}.",
    "Write a rhyming couplet about {poem_topic}.",
    "Write a fable with a moral about {moral}.",
    "Write a short, funny poem about {funny_topic}.",
    "Write a postcard message from {postcard_place}.",
]

WRITING_LONG = [
    "Write a long story, at least six paragraphs, about {premise}. Give the main character a "
    "name and a clear goal.",
    "Write a detailed essay of several paragraphs arguing that {claim}.",
    "Write a balanced, multi-paragraph essay on this question: {debate}",
    "Write a long blog post about {blog_topic}, with an introduction, several sections and a "
    "conclusion.",
    "Write a complete five-minute speech for {occasion}.",
    "Write a long, detailed letter {letter_task}.",
    "Write the first chapter of a children's book about {premise}.",
    "Write a detailed short story in the style of a folk tale about {premise}, ending with a "
    "twist.",
]

POEM_FORMS = ["haiku", "limerick", "sonnet", "free-verse poem", "short rhyming poem",
              "poem of three stanzas", "cinquain", "ode", "ballad", "villanelle",
              "poem in the form of a list", "prose poem"]

POEM_TOPICS = ["a rainy bus stop at dawn", "the smell of a bakery on a cold morning",
               "a lighthouse that has been switched off", "a grandmother's garden",
               "the last day of summer holidays", "a cat watching birds through a window",
               "a city at three in the morning", "a tired old bicycle", "the first cup of tea",
               "a thunderstorm over the sea", "moving to a new country", "a lost glove",
               "learning to swim", "a library at closing time", "fog in a mountain valley",
               "a kite caught in a tree", "the sound of a train at night", "an empty playground",
               "a friendship that survived a long distance", "the moon over a frozen lake",
               "a market full of spices", "the quiet after a party", "a snail crossing a path",
               "a forgotten photograph", "the hum of a refrigerator", "wildflowers on a wall",
               "a long drive home", "a chess game in the park", "the first warm day of spring",
               "waiting for exam results", "a fox in the city", "an old wooden boat"]

PREMISES = ["a robot who wants to become a gardener", "two rival bakers forced to share a kitchen",
            "a girl who finds a map hidden inside a jar of honey",
            "a town where it never stops snowing", "a detective who is afraid of the dark",
            "a dragon who is allergic to smoke", "an old man who befriends a crow",
            "a lift that stops at a floor that doesn't exist",
            "a shy boy who wins a singing contest by accident",
            "a lighthouse keeper who receives letters from the sea",
            "a cat who becomes mayor of a small village", "a clock that runs backwards",
            "a chef who loses her sense of taste", "a postman on the last route before retiring",
            "a time traveller stuck in a waiting room", "twins who swap lives for a week",
            "a tree that remembers everyone who climbed it", "a ghost who is bad at haunting",
            "a girl who can talk to bicycles", "a wizard who has forgotten all his spells",
            "a mouse who organises a rescue", "the last bookshop on a busy street",
            "a stray dog that follows a school bus", "a painter who can only paint doors",
            "a family road trip that goes wrong in the best way",
            "an astronaut who misses the smell of rain",
            "a small island that votes to move to a warmer sea",
            "a knight who would rather be a baker", "a violin that plays by itself at midnight",
            "a child who collects lost sounds", "a scarecrow who wants to see the ocean",
            "two strangers stuck in a broken lift", "a pirate who is afraid of water",
            "a map that changes every night", "a beekeeper and a very ambitious bee",
            "a grandmother who used to be a spy", "a snowman who wants to see summer",
            "a young inventor whose machines only work when no one is watching",
            "a city pigeon who guides tourists", "a family of hedgehogs moving house"]

EMAIL_TASKS = ["to a landlord reporting a leak under the kitchen sink",
               "to a hiring manager following up after an interview",
               "to my team announcing that the office will close early on Friday",
               "to a customer apologising for a late delivery",
               "to a neighbour about a parcel delivered to the wrong house",
               "to a professor asking for an extension on an essay",
               "to a supplier asking for a discount on a large order",
               "to a club's members reminding them about the annual meeting",
               "to a friend I haven't spoken to in years",
               "to a gym cancelling my membership",
               "to a colleague thanking them for covering my tasks while I was ill",
               "to a client introducing myself as their new account manager",
               "to parents about a school trip to a science museum",
               "to a plumber asking for a quote to replace a boiler",
               "to my manager proposing a four-day trial of remote work",
               "to a hotel asking whether they can store my luggage after check-out",
               "to volunteers thanking them after a charity run",
               "to a bookshop asking them to host a poetry evening"]

TWEET_PURPOSES = ["announcing a new flavour at an ice-cream shop",
                  "inviting people to a beach clean-up on Saturday",
                  "celebrating a library's 100th birthday",
                  "telling customers a website will be down for maintenance",
                  "promoting a free coding workshop for teenagers",
                  "sharing a tip for saving energy at home",
                  "announcing the winner of a photo competition",
                  "reminding people to vote in a local election",
                  "launching a podcast about local history",
                  "apologising for a delayed train service"]

PRODUCTS = ["a solar-powered phone charger", "a folding electric bike", "noise-cancelling "
            "headphones for children", "a smart plant pot that waters itself",
            "a handmade ceramic teapot", "a waterproof hiking backpack", "an alarm clock that "
            "wakes you with light", "a set of reusable beeswax food wraps",
            "a board game about building cities", "a weighted blanket", "a pocket-sized "
            "translator", "an organic dog shampoo", "a standing desk", "a travel mug that "
            "keeps coffee hot for hours", "a children's science kit", "a language-learning app",
            "a cast-iron frying pan", "a pair of recycled-plastic trainers",
            "a bird feeder with a camera", "a subscription box of local cheeses"]

BUSINESSES = ["a family-run pizza place", "a dog-walking service", "a bicycle repair shop",
              "a second-hand bookshop", "a vegan bakery", "a climbing gym", "a tutoring "
              "company", "a window-cleaning business", "a small hotel by the sea", "an "
              "electric-car charging network", "a community radio station", "a yoga studio",
              "a repair shop for old radios", "a flower delivery service", "a local farmers' "
              "market", "a language school", "a children's theatre", "a mobile coffee van"]

OCCASIONS = ["the opening of a new community centre", "a school graduation ceremony",
             "accepting an award for volunteering", "the first day of a new project team",
             "a retirement party for a head teacher", "welcoming exchange students",
             "the launch of a neighbourhood recycling scheme", "the end of a football season",
             "a charity dinner for a children's hospital", "a library's reopening",
             "a company's tenth anniversary", "a science fair prize-giving"]

TOAST_OCCASIONS = ["my sister's wedding", "a friend's 40th birthday", "my parents' 30th "
                   "anniversary", "a colleague's promotion", "the end of a long project",
                   "a family reunion", "a new year's eve dinner", "a friend moving abroad"]

LETTER_TASKS = ["to your future self ten years from now", "to the mayor asking for more bike "
                "lanes", "to a favourite author explaining what their book meant to you",
                "to a local newspaper about noise from late-night deliveries",
                "to a pen pal in another country describing your town",
                "to a grandparent about your first week at university",
                "to a company complaining about a faulty kettle",
                "to a younger sibling starting secondary school",
                "to a teacher who changed your life", "to the council supporting a new park",
                "of recommendation for a hard-working former employee",
                "to a neighbour thanking them for looking after your cat"]

THANKS_FOR = ["a neighbour who fixed my fence", "a nurse who cared for my father",
              "a friend who helped me move house", "guests who came to our wedding",
              "a colleague who trained me", "a coach after a great season",
              "an aunt who sent a birthday present", "volunteers at a food bank"]

SCENES = ["a busy train station at rush hour", "a fishing harbour before sunrise",
          "a kitchen on a holiday morning", "a forest after heavy rain", "a night market",
          "an empty school corridor in summer", "a mountain hut during a storm",
          "a desert town at noon", "a crowded beach in August", "a hospital waiting room",
          "an old cinema before the film starts", "a snowy village square at dusk",
          "a greenhouse in winter", "a car-boot sale on a Sunday morning",
          "a rooftop garden in a big city", "a laundrette late at night"]

CHAR_PAIRS = ["a pirate and a librarian", "a grandmother and her robot assistant",
              "two pigeons on a statue", "a nervous pilot and a calm passenger",
              "a detective and a talking parrot", "a king and his cook",
              "two astronauts on a long mission", "a teenager and a medieval knight",
              "a customer and a very honest shop assistant", "a snowman and the sun",
              "a teacher and a student who forgot their homework", "two rival magicians"]

DIALOGUE_TOPICS = ["who should do the washing-up", "the best way to spend a rainy day",
                   "whether cats or dogs are better", "planning a surprise party",
                   "a strange noise in the night", "choosing a name for a new boat",
                   "what to pack for a long journey", "a lost umbrella",
                   "the last slice of cake", "learning to cook"]

AUDIENCES = ["students the night before an exam", "a team after a difficult month",
             "someone starting a new job", "runners before a marathon",
             "a friend recovering from an injury", "new parents", "people learning a language",
             "volunteers at the start of a long day"]

RIDDLE_ANSWERS = ["a shadow", "an umbrella", "an echo", "a candle", "a map", "a key", "time",
                  "a piano", "a cloud", "a bridge", "footsteps", "a mirror", "an egg", "a river"]

JOB_ADS = ["a part-time barista", "a summer lifeguard", "a junior web developer",
           "a volunteer tour guide at a castle", "a night-shift baker", "a zoo keeper's "
           "assistant", "a school caretaker", "a librarian for a mobile library bus",
           "a farm hand for the apple harvest", "a customer support agent"]

ANNOUNCEMENTS = ["telling residents that the swimming pool will reopen next month",
                 "about a change to the office parking rules",
                 "inviting members to a club's summer picnic",
                 "that a village shop is moving to new premises",
                 "about a lost-and-found table at a festival",
                 "that a choir is looking for new tenors"]

POVS = ["a house cat on moving day", "a lighthouse during a storm", "a football on match day",
        "a tree in a city park", "a school bag on the first day of term",
        "a suitcase on a long trip", "a violin in a music shop", "a robot vacuum cleaner",
        "a kite on a windy beach", "the last biscuit in the tin",
        "a goldfish watching a family dinner", "an old bridge"]

MORALS = ["patience", "honesty", "sharing", "listening to others", "not judging by looks",
          "working together", "admitting mistakes", "being grateful", "courage", "kindness to "
          "strangers"]

FUNNY_TOPICS = ["a cat who hates Mondays", "socks that disappear in the wash",
                "a printer that never works when you need it", "trying to fold a map",
                "a dog who thinks he is the boss", "forgetting why you walked into a room",
                "a very slow queue at the post office", "a seagull stealing chips"]

POSTCARD_PLACES = ["a rainy seaside town", "a mountain village in winter", "a big city on a "
                   "first visit", "a camping trip where everything went wrong",
                   "a sunny island", "a music festival", "a farm holiday", "a long train journey"]

CLAIMS = ["every child should learn to cook at school", "cities should make public transport "
          "free", "homework in primary school does more harm than good", "libraries matter "
          "more than ever", "everyone should learn a second language",
          "four-day working weeks would benefit most companies", "museums should be free to "
          "enter", "cars should be banned from city centres on Sundays",
          "schools should start later in the morning", "people should repair things before "
          "replacing them", "video games can be a form of art", "every town needs a community "
          "garden"]

DEBATES = ["Should school uniforms be compulsory?", "Is it better to rent or to buy a home?",
           "Should zoos exist?", "Should voting be compulsory?", "Is social media good for "
           "teenagers?", "Should tourists pay a fee to visit popular cities?",
           "Should exams be replaced by coursework?", "Is working from home better than "
           "working in an office?", "Should plastic bags be banned?",
           "Should children be paid for doing chores?"]

BLOG_TOPICS = ["learning to bake bread at home", "a first year of growing vegetables",
               "cycling to work through the winter", "living in a small flat with a big dog",
               "the joys of slow travel by train", "starting to run at the age of fifty",
               "decluttering a house full of memories", "learning to play the piano as an adult",
               "the best free things to do in a small town", "keeping a journal for a year",
               "how a book club changed my reading habits", "building a bird-friendly garden"]

# ----------------------------------------------------------------------------------------------
# everyday: cooking, travel, home, health habits, shopping, pets

EVERYDAY_FOLLOW = [
    "What if I only have half an hour?",
    "Which of those steps matters most?",
    "Can you put that into a short checklist?",
    "What mistakes should I avoid?",
    "Is there a cheaper way to do this?",
    "How would this change for a family with small children?",
    "Can you give me a concrete example?",
    "What should I do if that doesn't work?",
]

EVERYDAY_SHORT = [
    "How do I {home_task}?",
    "What's the easiest way to {home_task}?",
    "What is a simple recipe for {dish}?",
    "How can I make {dish} healthier without losing the flavour?",
    "I have {ingredients} in the kitchen. What could I cook for dinner?",
    "How long does {food_item} keep in the fridge, and how can I tell if it has gone bad?",
    "What should I pack for {trip}?",
    "Any tips for {travel_situation}?",
    "How can I {habit_goal}?",
    "What are some easy ways to {habit_goal}?",
    "My {pet} {pet_problem}. What should I do?",
    "What do I need to know before getting {new_pet}?",
    "What should I look for when buying {purchase}?",
    "Is it better to buy {buy_choice}?",
    "How often should I {maintenance}?",
    "How do I get {stain} out of {fabric}?",
    "What's a good way to organise {organise}?",
    "How can I save money on {expense}?",
    "What can I do with {kids} on a rainy {weekday1}?",
    "Can I substitute {substitute}?",
    "Why does my {kitchen_fail}?",
    "{everyday_question}",
    "{everyday_question}",
]

EVERYDAY_LONG = [
    "Write a detailed step-by-step guide to {guide_task}.",
    "Give me a complete guide to {guide_task}, with a list of what I need and every step "
    "explained.",
    "Explain in detail how to {habit_goal}, including why each tip works and how to stick "
    "with it for a month.",
    "Write a thorough beginner's guide to caring for {new_pet}: food, housing, health and "
    "daily routine.",
    "Walk me through cooking {dish} from scratch, in detail, including how to prepare the "
    "ingredients and how to tell when it's done.",
]

HOME_TASKS = ["unclog a bathroom sink without chemicals", "stop a door from squeaking",
              "clean the inside of an oven", "get rid of condensation on windows in winter",
              "hang a heavy mirror on a plaster wall", "descale a kettle",
              "keep a rented flat warm without a huge heating bill", "clean a stained mattress",
              "remove limescale from a shower head", "stop a tap from dripping",
              "keep spiders out of the house", "clean grout between bathroom tiles",
              "sharpen kitchen knives", "reduce dust in a bedroom", "iron a shirt quickly",
              "unstick a jammed zip", "bleed a radiator", "clean a burnt saucepan",
              "wash a wool jumper without shrinking it", "keep cut flowers fresh longer",
              "store winter clothes over the summer", "patch a small hole in a wall",
              "pick a good houseplant for a dark room", "defrost a freezer"]

DISHES = ["lentil soup", "a vegetable curry", "banana bread", "a simple tomato pasta sauce",
          "fried rice", "a Spanish omelette", "chicken and vegetable stir-fry", "pancakes",
          "a chickpea salad", "homemade pizza dough", "mushroom risotto", "flapjacks",
          "a fish pie", "vegetable dumplings", "shakshuka", "a bean chilli", "apple crumble",
          "oat cookies", "roast vegetables", "a noodle soup", "guacamole", "hummus",
          "potato and leek soup", "a berry smoothie bowl", "baked salmon", "a quiche"]

INGREDIENTS = ["rice", "eggs", "spinach", "a tin of chickpeas", "half an onion", "some cheese",
               "two potatoes", "a carrot", "pasta", "a tin of tomatoes", "garlic", "frozen peas",
               "a courgette", "some yoghurt", "bread", "a chicken breast", "lentils",
               "a pepper", "mushrooms", "tofu", "a lemon", "leftover roast vegetables"]

FOOD_ITEMS = ["cooked rice", "opened yoghurt", "fresh fish", "homemade soup", "cut melon",
              "cooked chicken", "fresh pasta", "hard cheese", "boiled eggs", "leftover pizza"]

TRIPS = ["a week of hiking in the mountains", "a business trip of two nights",
         "a beach holiday with a toddler", "a winter city break", "a long-haul flight",
         "a music festival in the rain", "a cycling tour", "a school ski trip",
         "visiting relatives for a month", "a weekend in a cabin with no electricity"]

TRAVEL_SITUATIONS = ["a first trip abroad on my own", "travelling with a dog by train",
                     "sleeping on a night bus", "beating jet lag after a long flight",
                     "travelling on a very small budget", "a long car journey with children",
                     "staying safe while backpacking", "travelling with a food allergy",
                     "getting around a city where I don't speak the language",
                     "packing only hand luggage for two weeks"]

HABIT_GOALS = ["drink more water during the day", "cut down on screen time in the evening",
               "get into the habit of stretching every morning", "eat more vegetables",
               "go to bed at the same time every night", "take fewer sugary snacks at work",
               "walk ten thousand steps a day", "stop snoozing my alarm",
               "keep a tidy desk", "remember to take breaks from the computer",
               "read more books", "cook at home more often", "stick to a weekly budget",
               "improve my posture at a desk", "make time for friends"]

PETS = ["dog", "cat", "rabbit", "budgie", "guinea pig", "hamster", "puppy", "kitten", "tortoise"]

PET_PROBLEMS = ["keeps scratching the sofa", "won't eat its usual food", "barks at every "
                "visitor", "seems scared of loud noises", "pulls on the lead", "chews cables",
                "keeps waking me up at 5 am", "doesn't like being picked up",
                "is gaining weight", "hides when guests arrive"]

NEW_PETS = ["a rescue greyhound", "two guinea pigs", "a pair of budgies", "a kitten",
            "a bearded dragon", "a goldfish tank", "a house rabbit", "a puppy in a flat",
            "backyard chickens", "an older cat from a shelter"]

PURCHASES = ["a second-hand car", "a mattress", "running shoes", "a laptop for studying",
             "a winter coat", "a washing machine", "a bicycle for commuting", "a tent",
             "a pram", "a sofa", "kitchen knives", "a mobile phone for an older parent",
             "a vacuum cleaner", "hiking boots", "a desk chair"]

BUY_CHOICES = ["a new or a used bicycle", "a gas or an induction hob",
               "a big weekly shop or several small ones", "a laptop or a desktop computer",
               "frozen or fresh vegetables", "an e-reader or paper books",
               "an annual or a monthly train pass", "a cheap phone every two years or an "
               "expensive one every five years"]

MAINTENANCE = ["change my toothbrush", "wash my bed sheets", "clean the fridge",
               "check my car's tyre pressure", "replace the filter in my vacuum cleaner",
               "wash my pillows", "service my bicycle", "clean out the gutters",
               "defrost the freezer", "replace my running shoes"]

STAINS = ["coffee", "red wine", "grass stains", "candle wax", "ink", "tomato sauce",
          "chewing gum", "mud", "blood", "grease"]

FABRICS = ["a white shirt", "a carpet", "jeans", "a wool rug", "a sofa cushion",
           "a silk scarf", "a school uniform", "a cotton tablecloth"]

ORGANISE = ["a small kitchen", "a shared wardrobe", "kids' toys", "paperwork and bills",
            "a garage", "photos on my phone", "a bookshelf", "spices", "a tiny bathroom",
            "a home office in a corner of the living room"]

EXPENSES = ["heating", "school lunches", "a wedding", "car insurance", "holidays", "school uniforms",
            "birthday presents", "the electricity bill", "a phone contract", "commuting"]

KIDS = ["a four-year-old", "two bored teenagers", "a group of six-year-olds",
        "my nephew, who is eight", "toddler twins"]

SUBSTITUTES = ["yoghurt for sour cream in a recipe", "honey for sugar when baking",
               "olive oil for butter in a cake", "oat milk for cow's milk in pancakes",
               "baking soda for baking powder", "dried herbs for fresh ones",
               "brown rice for white rice in a risotto", "flax seeds for eggs"]

KITCHEN_FAILS = ["bread come out dense and heavy", "rice always turn out sticky",
                 "cake sink in the middle", "sauce split when I add cream",
                 "pasta stick together", "meringue weep", "pancakes come out rubbery",
                 "roast potatoes never get crispy", "soup taste bland"]

EVERYDAY_QUESTIONS = [
    "How do I choose a ripe avocado at the shop?",
    "What's the best way to reheat leftover rice safely?",
    "How can I stop my glasses fogging up when I wear a scarf?",
    "How do I make a cheap weekly shopping list that I'll actually follow?",
    "What's the right way to store fresh herbs?",
    "How do I keep my bike from getting stolen in the city?",
    "How can I make my morning coffee taste better without buying a machine?",
    "What's a good way to break in new walking boots?",
    "How should I clean a cast-iron pan?",
    "How do I know if eggs are still fresh?",
    "What houseplants are safe to keep with cats?",
    "How can I cool down a bedroom on a hot night without air conditioning?",
    "How do I introduce a new cat to my older cat?",
    "What should I keep in a basic first-aid kit at home?",
    "How do I pick a good watermelon?",
    "How can I stop my houseplants from dying while I'm on holiday?",
    "How often should a dog be bathed?",
    "What's the best way to pack a suitcase so clothes don't crease?",
    "How can I make a small balcony nicer to sit on?",
    "How do I sort out a drawer full of tangled cables?",
    "What's a healthy snack I can take on a long walk?",
    "How do I cook pasta so it doesn't boil over?",
    "How can I reduce food waste at home?",
    "Is it safe to refreeze food that has thawed?",
    "How do I keep my phone battery healthy for longer?",
    "What are the signs that my cat is unwell?",
    "How do I get a toddler to eat vegetables?",
    "What's the best way to clean windows without leaving streaks?",
    "How should I store potatoes and onions?",
    "How do I choose a good pair of sunglasses?",
    "How can I make a long flight more comfortable?",
    "What can I give a guest who is vegan and gluten-free for dessert?",
    "How do I teach my dog to come back when called?",
    "How can I walk more when my job involves a lot of sitting?",
    "What's a polite way to split a restaurant bill with friends?",
    "How do I make my own salad dressing?",
]

GUIDE_TASKS = ["painting a room", "planting a small vegetable garden", "deep-cleaning a kitchen",
               "training a puppy to walk on a lead", "moving house with as little stress as "
               "possible", "baking sourdough bread", "changing a bicycle tyre",
               "setting up a home compost bin", "preparing a house for a winter holiday",
               "packing fragile items for a move", "making a budget for the first time",
               "assembling flat-pack furniture without losing your mind"]

# ----------------------------------------------------------------------------------------------
# stem: physics, chemistry, biology, astronomy, computing, earth science

STEM_FOLLOW = [
    "Can you give a concrete example from everyday life?",
    "Explain your answer to a ten-year-old.",
    "What is a common misconception about this?",
    "How did scientists figure this out?",
    "Can you sum that up in two sentences?",
    "What is a simple experiment I could do at home to see this?",
    "Where does this show up in technology we use every day?",
    "Which part of this is still not fully understood?",
]

STEM_SHORT = [
    "Explain {stem_concept} in simple terms.",
    "What is {stem_concept}, and why does it matter?",
    "Give an everyday example of {stem_concept} and explain it.",
    "Explain {stem_concept} using an analogy.",
    "How does {device} work?",
    "Why {phenomenon}?",
    "What is the difference between {stem_pair}?",
    "What would happen if {what_if}?",
    "How do scientists {sci_method}?",
    "In a few sentences, explain how {process}.",
    "How is {material} made, and what is it used for?",
    "Why is {material} so useful?",
    "{stem_question}",
    "{stem_question}",
]

STEM_LONG = [
    "Write a detailed explanation of {stem_concept}, covering how it was discovered, how it "
    "works and where it matters in everyday life.",
    "In several paragraphs, explain step by step how {process}.",
    "Write a long, clear explanation of how {device} works, aimed at a curious teenager.",
    "Explain in depth the difference between {stem_pair}, with examples of each.",
]

STEM_CONCEPTS = ["inertia", "friction", "air pressure", "momentum", "the Doppler effect",
                 "electrical resistance", "magnetism", "refraction of light", "sound waves",
                 "kinetic and potential energy", "heat conduction", "buoyancy", "entropy",
                 "radioactive half-life", "static electricity", "centripetal force",
                 "an acid and a base", "a chemical bond", "oxidation", "a catalyst", "pH",
                 "the periodic table", "a polymer", "distillation", "an isotope",
                 "natural selection", "DNA", "cell division", "the immune system", "enzymes",
                 "antibiotic resistance", "an ecosystem", "a food web", "homeostasis",
                 "the nervous system", "gut bacteria", "genetic mutation", "osmosis",
                 "a black hole", "a light-year", "a galaxy", "the life cycle of a star",
                 "dark matter", "exoplanets", "the phases of the Moon", "orbital motion",
                 "binary numbers", "an algorithm", "encryption", "machine learning",
                 "a computer's memory", "the internet's packet switching", "a compiler",
                 "plate tectonics", "the water cycle", "erosion", "the greenhouse effect",
                 "ocean currents", "the rock cycle", "weather fronts", "soil formation",
                 "the carbon cycle", "photosynthesis", "the speed of light", "gravity"]

DEVICES = ["a refrigerator", "a bicycle's gears", "a smoke detector", "a touchscreen",
           "a solar panel", "an electric motor", "a wind turbine", "a thermostat",
           "a GPS receiver", "a lock and key", "a camera lens", "noise-cancelling headphones",
           "an induction hob", "a heat pump", "a barcode scanner", "a hot-air balloon",
           "a submarine", "a rechargeable battery", "a fibre-optic cable", "a pressure cooker",
           "a compass", "a speaker", "an X-ray machine", "a seismometer", "a telescope",
           "wireless charging", "a QR code", "a jet engine", "a hearing aid", "a light bulb"]

PHENOMENA = ["does the sky turn red at sunset", "do we get rainbows after rain",
             "does bread rise", "do onions make us cry", "do cats always land on their feet",
             "does salt melt ice on roads", "do leaves change colour in autumn",
             "do our ears pop on an aeroplane", "is the sea salty", "do we yawn",
             "does a balloon stick to a wall after rubbing it on hair",
             "do bubbles look rainbow-coloured", "do we have fingerprints",
             "does the Moon look bigger near the horizon", "does thunder follow lightning",
             "do some metals rust and others not", "do bees make honey",
             "do we get goosebumps", "does popcorn pop", "do birds migrate",
             "do volcanoes erupt", "does hot water sometimes freeze faster than cold water",
             "does a spinning top stay upright", "do apples turn brown when cut",
             "do we have leap years", "does the wind blow", "do earthquakes happen",
             "does soap remove grease", "do tides happen twice a day",
             "is Mars red", "do mirrors flip left and right but not up and down",
             "does a straw look bent in a glass of water"]

STEM_PAIRS = ["speed and velocity", "weather and climate", "a virus and a bacterium",
              "mass and weight", "heat and temperature", "an atom and a molecule",
              "AC and DC electricity", "a meteor and a meteorite", "RAM and storage",
              "a star and a planet", "mitosis and meiosis", "an acid and an alkali",
              "renewable and non-renewable energy", "a comet and an asteroid",
              "conduction and convection", "a gene and a chromosome",
              "nuclear fission and fusion", "hardware and software", "an igneous and a "
              "sedimentary rock", "a hurricane and a tornado", "a vein and an artery",
              "a chemical and a physical change", "a solution and a suspension",
              "a series and a parallel circuit", "longitude and latitude"]

WHAT_IFS = ["the Earth stopped spinning", "the Moon disappeared", "bees went extinct",
            "the Earth had no atmosphere", "humans could photosynthesise",
            "water expanded when it got warmer instead of colder", "the Sun were twice as big",
            "all the ice on Earth melted", "there were no friction", "the Earth's magnetic field "
            "vanished", "we drilled a tunnel through the centre of the Earth",
            "plants stopped producing oxygen", "the speed of light were much slower",
            "the internet went down worldwide for a week"]

SCI_METHODS = ["measure the distance to a star", "work out the age of a rock",
               "know what the centre of the Earth is made of", "weigh a planet",
               "test whether a new medicine works", "predict the weather",
               "find new species in the deep sea", "measure the temperature of the Sun",
               "know how old a fossil is", "track animal migrations", "find planets around "
               "other stars", "measure earthquakes", "study ancient climates"]

MATERIALS = ["glass", "steel", "concrete", "paper", "aluminium", "nylon", "silicon chips",
             "rubber", "cement", "plywood", "stainless steel", "brick", "ceramic tiles",
             "carbon fibre", "graphene", "wool felt", "recycled plastic", "bioplastic"]

STEM_QUESTIONS = [
    "Why can't we see stars during the day?",
    "How do bats find their way in the dark?",
    "Why do some animals hibernate?",
    "How does a chameleon change colour?",
    "What makes a diamond so hard?",
    "Why is the ocean blue?",
    "How do noise levels get measured in decibels?",
    "What is inside a grain of sand?",
    "How do spiders make silk?",
    "Why do our fingers wrinkle in the bath?",
    "How do tree rings show a tree's age?",
    "What happens to the body when we sleep?",
    "Why does a candle flame point upwards?",
    "How do octopuses use their arms to taste?",
    "What is a quasar?",
    "How does a magnet pick up paper clips but not coins?",
    "Why do planes fly at such high altitudes?",
    "How do glaciers move?",
    "Why do we see lightning before we hear it?",
    "How do computers store pictures as numbers?",
    "What is the difference between weather radar and satellite images?",
    "How does the body keep its temperature steady?",
    "Why does iron rust faster near the sea?",
    "How do birds know where to fly when they migrate?",
    "How do sunflowers follow the sun?",
    "What makes a good insulator?",
    "How did the Moon form?",
    "What causes the northern lights?",
    "Why does bread go stale?",
    "How do antibiotics kill bacteria?",
    "How does a search engine rank pages, in simple terms?",
    "How does error correction keep data safe on a scratched disc?",
    "Why do some soils hold water better than others?",
    "What is a supernova, and what is left after one?",
    "How do our eyes see colour?",
    "Why does a boomerang come back?",
]

PROCESSES = ["a volcano forms", "a cloud forms", "a seed grows into a plant",
             "the body digests a meal", "a caterpillar becomes a butterfly",
             "a wound heals", "a river creates a valley", "soap is made", "steel is made",
             "glass is made", "a star is born", "the heart pumps blood", "a battery stores "
             "energy", "a computer runs a program", "coral reefs form", "fossils form",
             "muscles grow stronger", "oil forms underground", "a hurricane forms",
             "the body fights a cold"]

# ----------------------------------------------------------------------------------------------
# humanities: history, philosophy, literature, art, geography, economics

HUMANITIES_FOLLOW = [
    "Can you give a concrete example of the second point?",
    "What do historians or critics disagree about here?",
    "How does this connect to the world today?",
    "Explain it to a ten-year-old.",
    "Sum that up in three sentences.",
    "What is the strongest argument against that view?",
    "What would be a good question to discuss about this in a class?",
    "Which part of your answer is most uncertain?",
]

HUMANITIES_SHORT = [
    "What led to {hist_event}?",
    "What were the long-term consequences of {hist_event}?",
    "Why is {hist_event} considered important?",
    "Who was {hist_figure}, and why is that person remembered?",
    "Explain {phil_idea} in plain language.",
    "What is a common objection to {phil_idea}?",
    "What is {phil_concept}? Give an example.",
    "What are the main themes of {book}?",
    "Describe the main character of {book} and how they change.",
    "What is {art_movement}, and how can you recognise it?",
    "Why is {artwork} so famous?",
    "What is the climate of {region} like, and why?",
    "Why is {geo_feature} so important to the people who live near it?",
    "Explain {econ_concept} with a simple example.",
    "What are the pros and cons of {econ_policy}?",
    "How did {invention_hist} change everyday life?",
    "What was daily life like for {daily_life}?",
    "Compare {compare_pair} in a short paragraph.",
    "How did {old_city} become such an important city?",
    "What is the history of {old_city} in brief?",
    "{humanities_question}",
    "{humanities_question}",
]

HUMANITIES_LONG = [
    "Write a detailed essay on {hist_event}: its causes, the main events and its legacy.",
    "Write a multi-paragraph comparison of {compare_pair}.",
    "Give a detailed overview of {art_movement}, including key artists, techniques and its "
    "influence.",
    "Explain {econ_concept} in depth, with examples from history and from everyday life.",
    "Write a long, careful explanation of {phil_idea}, including its strongest criticisms.",
    "Write an essay about {book}: its plot, characters, themes and why it is still read.",
]

HIST_EVENTS = ["the French Revolution", "the fall of the Western Roman Empire",
               "the Industrial Revolution in Britain", "the Meiji Restoration in Japan",
               "the American Civil War", "the Black Death in Europe", "the Reformation",
               "the partition of India in 1947", "the fall of the Berlin Wall",
               "the Russian Revolution of 1917", "the Norman conquest of England",
               "the Haitian Revolution", "the Age of Exploration",
               "the rise of the Mongol Empire", "the abolition of the slave trade",
               "the Great Depression", "the founding of the United Nations",
               "the decolonisation of Africa", "the moon landing in 1969",
               "the Renaissance in Italy", "the Spanish conquest of the Aztec Empire",
               "the Cuban Missile Crisis", "the signing of Magna Carta",
               "the unification of Germany in 1871", "the Irish Famine"]

HIST_FIGURES = ["Mansa Musa", "Catherine the Great", "Ashoka", "Simon Bolivar",
                "Hypatia of Alexandria", "Nelson Mandela", "Ibn Battuta", "Elizabeth I",
                "Charlemagne", "Frederick Douglass", "Marie Curie", "Genghis Khan",
                "Emmeline Pankhurst", "Saladin", "Toussaint Louverture", "Wu Zetian",
                "Leonardo da Vinci", "Harriet Tubman", "Cleopatra", "Mahatma Gandhi",
                "Ada Lovelace", "Suleiman the Magnificent", "Queen Nzinga", "Peter the Great"]

PHIL_IDEAS = ["Plato's allegory of the cave", "Kant's categorical imperative",
              "the trolley problem", "Hobbes's idea of the social contract",
              "Aristotle's golden mean", "John Stuart Mill's harm principle",
              "Sartre's idea that existence precedes essence", "the ship of Theseus",
              "Pascal's wager", "the veil of ignorance", "the problem of free will",
              "Hume's problem of induction", "Occam's razor", "the Stoic idea of the "
              "dichotomy of control", "Simone de Beauvoir's view of freedom",
              "the experience machine thought experiment"]

PHIL_CONCEPTS = ["utilitarianism", "Stoicism", "existentialism", "empiricism",
                 "moral relativism", "virtue ethics", "nihilism", "skepticism",
                 "determinism", "pragmatism", "the scientific method", "a logical fallacy"]

BOOKS = ["Pride and Prejudice", "Things Fall Apart", "Don Quixote", "Frankenstein",
         "The Great Gatsby", "One Hundred Years of Solitude", "To Kill a Mockingbird",
         "Crime and Punishment", "Jane Eyre", "The Odyssey", "Moby-Dick", "Beloved",
         "The Little Prince", "Animal Farm", "Wuthering Heights", "The Tale of Genji",
         "Hamlet", "Macbeth", "Great Expectations", "The Old Man and the Sea"]

ART_MOVEMENTS = ["Impressionism", "Cubism", "Surrealism", "the Bauhaus movement",
                 "Art Nouveau", "Romanticism in painting", "Pop Art", "Abstract "
                 "Expressionism", "Gothic architecture", "Renaissance painting",
                 "Japanese woodblock printing", "Minimalism", "Dada", "Art Deco"]

ARTWORKS = ["the Mona Lisa", "The Starry Night", "Guernica", "The Great Wave off Kanagawa",
            "The Birth of Venus", "The Persistence of Memory", "The Scream",
            "Girl with a Pearl Earring", "the ceiling of the Sistine Chapel", "The Thinker",
            "Las Meninas", "the Taj Mahal", "the Parthenon", "Water Lilies by Monet"]

REGIONS = ["the Sahara", "Patagonia", "Siberia", "the Amazon basin", "Iceland",
           "the Mediterranean coast", "the Himalayas", "Scandinavia", "the Australian "
           "outback", "Southeast Asia", "the Andes", "the Great Plains of North America",
           "New Zealand", "the Arabian Peninsula", "East Africa's Rift Valley"]

GEO_FEATURES = ["the Mekong River", "the Rhone delta", "Lake Titicaca", "the Ganges",
                "the Danube", "the Atacama Desert", "the Great Barrier Reef",
                "the Ring of Fire", "the Gulf Stream", "the Mississippi River",
                "the Okavango Delta", "the Yangtze River", "the Strait of Gibraltar",
                "the Panama Canal", "the monsoon"]

ECON_CONCEPTS = ["supply and demand", "inflation", "comparative advantage",
                 "diminishing returns", "a monopoly", "interest rates", "the tragedy of the "
                 "commons", "economies of scale", "externalities", "price elasticity",
                 "a recession", "exchange rates", "the minimum wage", "public goods",
                 "sunk costs", "compound growth", "market equilibrium", "a budget deficit"]

ECON_POLICIES = ["a universal basic income", "a sugar tax", "rent control",
                 "free public transport", "tariffs on imported goods", "a carbon tax",
                 "raising the minimum wage", "lowering the retirement age",
                 "congestion charges in city centres", "tuition-free universities"]

INVENTIONS_HIST = ["the steam engine", "the telephone", "refrigeration", "the bicycle",
                   "the shipping container", "electric street lighting", "the radio",
                   "the washing machine", "the mechanical clock", "paper money",
                   "the compass", "antibiotics", "the camera", "the railway"]

DAILY_LIFE = ["a child in ancient Rome", "a sailor on a trading ship in the 1700s",
              "a farmer in medieval France", "a factory worker in 19th-century Manchester",
              "a scribe in ancient Egypt", "a merchant in Timbuktu in the 1300s",
              "a samurai in Edo-period Japan", "a Viking settler in Iceland",
              "a student in a medieval university", "a family during the 1930s Dust Bowl"]

OLD_CITIES = ["Venice", "Istanbul", "Baghdad", "Timbuktu", "Cusco", "Kyoto", "Samarkand",
              "Alexandria", "Lisbon", "Amsterdam", "Xi'an", "Mexico City", "Carthage",
              "Great Zimbabwe", "Angkor", "Cordoba"]

HUMANITIES_QUESTIONS = [
    "Why did so many European cities build walls in the Middle Ages?",
    "What is the difference between a historian and an archaeologist?",
    "Why did people start farming instead of hunting and gathering?",
    "What makes a poem different from prose?",
    "What is human geography, and how is it different from physical geography?",
    "Why are most big cities built near rivers or coasts?",
    "What does a central bank do?",
    "Why do countries trade with each other?",
    "What is the purpose of a constitution?",
    "What is a primary source, and why do historians value it?",
    "Why did the Roman roads matter so much?",
    "What is the difference between a myth and a legend?",
    "Why is Shakespeare still performed today?",
    "How do maps distort the shape of the world?",
    "What does GDP measure, and what does it miss?",
    "What was the Enlightenment?",
    "Why do some languages have many words for the same thing?",
    "What is the difference between a tragedy and a comedy?",
    "How did the Vikings navigate the open sea?",
    "What is the purpose of art, according to different philosophers?",
    "Why do people disagree about whether history repeats itself?",
    "What is a welfare state?",
    "How did trade routes spread religions?",
    "What makes a border natural or artificial?",
    "Why did the Ottoman Empire last so long?",
    "What does a satirist do?",
    "What is the difference between a treaty and an alliance?",
    "Why did many writers of the 1920s feel disillusioned?",
    "What is the difference between ethics and law?",
    "Why do deserts form where they do?",
    "How does a stock market work, in simple terms?",
    "What is the point of studying philosophy?",
    "Why did medieval cathedrals take so long to build?",
    "What is the difference between a free market and a planned economy?",
]

COMPARE_PAIRS = ["ancient Athens and ancient Sparta", "Impressionism and Expressionism",
                 "capitalism and socialism", "the Roman Republic and the Roman Empire",
                 "Stoicism and Epicureanism", "Romantic and Realist novels",
                 "Gothic and Romanesque architecture", "Confucian and Daoist ideas "
                 "about a good life", "the American and French revolutions",
                 "Baroque and Renaissance painting", "tragedy and comedy in Greek theatre"]

# ----------------------------------------------------------------------------------------------
# roleplay

ROLEPLAY_FOLLOW = [
    "What is the hardest part of your day?",
    "Tell me about a moment from your past that shaped who you are.",
    "Someone in the crowd asks a rude question. How do you respond, still in character?",
    "Now say the same thing to a small child.",
    "What advice would you give someone who wants to do what you do?",
    "Describe what you can see around you right now.",
    "What do you do to relax when the day is over?",
    "Something unexpected just went wrong. What do you say?",
]

ROLEPLAY_SHORT = [
    "You are {role}. {rp_task}",
    "Pretend you are {role}. {rp_task}",
    "Imagine you're {role}. {rp_task}",
    "Act as {role}. {rp_task}",
    "Stay in character as {role}. {rp_task}",
    "You are {role}. A visitor asks you {rp_question} Answer in character.",
    "Play {coach_role}. {coach_task}",
    "{persona}",
]

ROLEPLAY_LONG = [
    "You are {role}. Tell the long story of the most memorable day of your life, in several "
    "paragraphs, with plenty of detail.",
    "You are {role}. Write a detailed diary of one full day, from morning to night.",
    "You are {role}. Give a long welcome talk to a group of newcomers, covering your rules, "
    "your history and your best advice.",
    "Stay in character as {role} and write a long letter to your younger self about what "
    "you have learned.",
]

ROLES = ["a lighthouse keeper on a remote island", "a medieval blacksmith",
         "a cheerful ice-cream van driver", "a retired detective", "a dragon who guards a "
         "library", "a robot learning to bake bread", "a ship's cook in the 1700s",
         "a park ranger in a national forest", "a time traveller from the year 3000",
         "a Roman centurion on the northern frontier", "a beekeeper", "a nervous teacher on "
         "the first day of school", "a wise old tortoise", "a taxi driver in a busy city",
         "a tour guide in a haunted castle", "a chef at a tiny seaside restaurant",
         "a circus juggler", "a mountain rescue volunteer", "a second-hand bookshop owner",
         "a village vet", "a knight who has just been knighted", "a Victorian chimney sweep",
         "a deep-sea diver", "a sports commentator", "a radio DJ on the night shift",
         "a wizard running a potion shop", "a train conductor on a sleeper train",
         "a gardener at a royal palace", "an Arctic explorer in 1910", "a barber in a small "
         "town", "a submarine captain", "a football coach at half-time",
         "a museum security guard", "an alien visiting Earth for the first time",
         "a mail carrier in the mountains", "a farmer at harvest time", "a toy maker",
         "a pirate captain who has lost the map", "a weather forecaster on live television",
         "an ancient Egyptian scribe", "a kindly ghost in an old hotel", "a hotel "
         "receptionist at midnight", "a zookeeper who looks after penguins",
         "a baker who opens at 4 am", "a violin maker", "a fire lookout in a forest tower",
         "an astronaut returning after six months in orbit", "a detective in 1920s Chicago",
         "a marathon runner at the finish line", "a dog who can talk"]

RP_TASKS = ["Introduce yourself to a new apprentice and describe a typical day.",
            "A customer is unhappy. Calm them down and offer to put things right.",
            "Explain the most common mistake beginners make in your line of work.",
            "Give a short pep talk to your team before a busy day.",
            "Describe the tool or object you could not do without, and why.",
            "Tell a child what you do all day.",
            "Write a short notice to pin on your door for visitors.",
            "Describe the strangest thing that ever happened to you at work.",
            "Explain what you love most about your work.",
            "Give three rules that everyone who works with you must follow.",
            "A journalist asks why your work matters. Reply.",
            "Describe your favourite place in the world.",
            "Explain how your job has changed over the years.",
            "Teach me one useful skill from your work in a few steps.",
            "Warn a newcomer about a danger they might not expect."]

RP_QUESTIONS = ["what the best part of your week was.", "how you got started.",
                "what you would change about your work if you could.",
                "what you eat for breakfast.", "whether you ever get lonely.",
                "what you are most proud of.", "what scares you most."]

COACH_ROLES = ["a job interviewer for a {job_title} position", "a strict but fair driving "
               "instructor", "a patient language tutor", "a personal trainer",
               "a debate coach", "a travel agent", "a sommelier recommending wines",
               "a careers adviser", "a museum guide at a dinosaur exhibit"]

COACH_TASKS = ["Ask me your first question and wait for my answer.",
               "Start our first session by asking me a few questions about myself.",
               "Give me a short introduction and then your first piece of advice.",
               "Greet me and explain what we will do today."]

PERSONAS = ["You are a friendly robot tour guide at a chocolate factory. Welcome the group "
            "and explain how cocoa beans become chocolate bars.",
            "Pretend you are a medieval town crier announcing that the king's cat is missing.",
            "You are a grumpy troll who guards a bridge. A polite traveller asks to cross.",
            "Imagine you are a houseplant that has been forgotten on a windowsill. Tell your "
            "owner how you feel.",
            "You are a news reporter standing in a field where a giant pumpkin has appeared "
            "overnight. Give your live report.",
            "Act as a cheerful airline pilot announcing a two-hour delay.",
            "You are the captain of a spaceship that has just discovered a planet made of "
            "cheese. Address the crew.",
            "Pretend you are a lost penguin asking for directions in a big city.",
            "You are an old oak tree answering questions from a school class.",
            "You are a game-show host introducing the final round.",
            "Imagine you are a nervous best man starting a wedding speech.",
            "You are a librarian in the year 2200 explaining what paper books were.",
            "Pretend you are a snail giving a motivational speech about patience.",
            "You are a fortune teller who can only see very boring futures. Read my future.",
            "You are a lifeguard at a very quiet beach describing your job to a tourist."]

# ----------------------------------------------------------------------------------------------
# summarization: the passage is inline, before or after the instruction

SUMMARY_FOLLOW = [
    "Now make it even shorter.",
    "Turn your summary into a headline.",
    "Which detail did you leave out, and why?",
    "Rewrite the summary for a ten-year-old.",
    "What question does the text leave unanswered?",
    "List the three most important facts from it.",
    "What is the tone of the original text?",
    "Who do you think the text was written for?",
]

SUMMARY_SHORT = [
    "{sum_instruction}\n\n{passage_short}",
    "{passage_short}\n\n{sum_instruction_after}",
]

SUMMARY_LONG = [
    "{sum_instruction_long}\n\n{passage_long}",
    "{passage_long}\n\n{sum_instruction_long_after}",
]

SUM_INSTRUCTIONS = ["Condense this into a single clear sentence:",
                    "What is this passage mostly about? Reply in one or two sentences.",
                    "Boil this down to its key point for someone in a hurry:",
                    "Give me the gist of the following in plain words.",
                    "Rewrite the following as a brief news-style summary.",
                    "In no more than 30 words, what does this text say?",
                    "Summarise this for a colleague who has not read it:",
                    "What are the two most important facts in this text?",
                    "Write a one-line recap of the paragraph below.",
                    "Read the text and tell me the main takeaway.",
                    "Sum up this paragraph in about twenty words:",
                    "Shorten this to one tweet-length summary:"]

SUM_INSTRUCTIONS_AFTER = ["What is the key message here, in one sentence?",
                          "Please condense that into two short sentences.",
                          "Sum that up in a single line.",
                          "What's the gist of this?",
                          "Give me a quick recap of the paragraph.",
                          "Can you shorten this to its essentials?",
                          "In plain words, what happened here?",
                          "Write a headline for this, then a one-line summary."]

SUM_INSTRUCTIONS_LONG = ["Write a summary of about 100 words of the following report.",
                         "Summarise this article in one paragraph, then list its key numbers.",
                         "Give me a short summary of this text, then say what remains unclear.",
                         "Write an executive summary of the following: a headline, three key "
                         "points and one open question.",
                         "Read the article and summarise each paragraph in one sentence.",
                         "Condense the following into a short briefing for a busy reader.",
                         "What are the main points of this article? Use a short bulleted "
                         "list, then one concluding sentence."]

SUM_INSTRUCTIONS_LONG_AFTER = ["Summarise the article above in a short paragraph.",
                               "Write a brief summary of this, about a third of its length.",
                               "Give the main points of this text as a numbered list.",
                               "Write a summary for a local newsletter, in under 80 words.",
                               "What are the key facts here, and what is the overall story?",
                               "Summarise this for someone who only has thirty seconds."]

# ----------------------------------------------------------------------------------------------
# extraction: pull structured facts out of a text

EXTRACTION_FOLLOW = [
    "Now format that as a table.",
    "Give the same information as JSON.",
    "Sort the items alphabetically.",
    "Which item was hardest to extract, and why?",
    "Is anything missing or ambiguous in the original text?",
    "How many items did you find in total?",
    "Now give only the items that involve a number.",
]

EXTRACTION_SHORT = [
    "{ext_instruction}\n\n{passage_short}",
    "{passage_short}\n\n{ext_instruction_after}",
    "{record_task}",
    "{record_task}",
    "{record_task}",
]

EXTRACTION_LONG = [
    "{ext_instruction_long}\n\n{passage_long}",
    "{passage_long}\n\n{ext_instruction_long_after}",
]

EXT_INSTRUCTIONS = ["Which people are named in the text below, and what does each of them do?",
                    "Pull out every number in this text along with what it refers to.",
                    "List the places mentioned in the following text.",
                    "Find all the dates, days and times in this text.",
                    "Which organisations or companies does this text mention?",
                    "Make a bulleted list of the facts in this text that involve money.",
                    "Extract the who, what, when and where from this text.",
                    "Turn the following into a list of key facts, one per line."]

EXT_INSTRUCTIONS_AFTER = ["Which people appear in the text above, and what are their roles?",
                          "List every number in the text together with its meaning.",
                          "What places are mentioned above?",
                          "Give me every time reference in that text.",
                          "Return the names and numbers in this text as JSON."]

EXT_INSTRUCTIONS_LONG = ["Read the following article and make a table of every person it "
                         "names, their role, and what they said or did.",
                         "From the text below, build a timeline of the events it describes, "
                         "with any dates or days it gives.",
                         "Extract all the figures in this article (counts, prices, "
                         "percentages, years) and explain what each one measures.",
                         "Go through the following text and produce a JSON object with the "
                         "keys people, places, organisations and numbers."]

EXT_INSTRUCTIONS_LONG_AFTER = ["Create a table of every person in the article above, with "
                               "their role and what they did.",
                               "List every figure in the article above and what it refers to.",
                               "Make a timeline of the events in this article.",
                               "Produce a JSON object with the people, places and numbers "
                               "mentioned above."]

RECORD_TASKS = [
    "Pull the date, time, party size and phone number out of this booking message: \"Hi "
    "{name1}, your table for {n:2..8} at {restaurant} is booked for {weekday1} {d:1..28} "
    "{month1} at {h:6..9}:{m:10..50/10} pm. Call {phone} if your plans change.\"",
    "Extract the job title, location, salary and closing date from this advert: \"{company1} "
    "is hiring a {job_title} in {town1}. Pay: {pay:24..68} thousand dollars a year. Apply by "
    "{d:1..28} {month1}.\"",
    "From this receipt, list each item with its price, then give the total: {receipt}",
    "From this email signature, extract the name, job title, company and phone number: "
    "\"{person1} | {job_title} | {company1} | tel. {phone}\"",
    "What are the departure time, arrival time, flight number and gate in this message? "
    "\"Flight {letters} {fl:100..999} to {city} leaves at {h:6..11}:{m:10..55/5} from gate "
    "{g:1..40} and lands at {h2:12..18}:{m2:10..55/5} local time.\"",
    "Extract the event name, date, venue and ticket price: \"Join us for the {town1} "
    "{event_word} on {weekday1} {d:1..28} {month1} at the {venue}. Tickets {p:5..30} "
    "dollars, children free.\"",
    "Turn this note into a list of tasks with owners and deadlines: \"{name1} will book the "
    "hall by {weekday1}, {name2} is ordering food before {weekday2}, and {name3} needs to "
    "send the invitations this week.\"",
    "Find the name, age, city and hobby of each person: \"{name1} is {a1:18..70} and lives in "
    "{town1}, where {name1} plays {hobby}. A cousin, {name2}, {a2:18..70}, lives in {town2} and "
    "enjoys {hobby}.\"",
    "List the symptoms, the duration and the medicine mentioned in this note: \"Patient "
    "reports a {symptom} and {symptom} for {days:2..9} days. Advised to take {medicine} twice "
    "a day.\"",
    "Extract every product and its quantity from this order: \"Please send {q1:2..9} boxes of "
    "{stationery}, {q2:10..60} {stationery} and one {stationery} to our {town1} office.\"",
    "Classify each of these sentences as a fact or an opinion: \"{town1} has {n:2..9} "
    "bridges. The old bridge is the prettiest. The museum opens at {h:8..10} am. The museum "
    "is boring.\"",
    "From this weather report, extract the temperature, wind speed and chance of rain for "
    "each day: \"{weekday1}: {t1:5..25} degrees, wind {w1:5..40} km/h, {r1:0..90/10}% rain. "
    "{weekday2}: {t2:5..25} degrees, wind {w2:5..40} km/h, {r2:0..90/10}% rain.\"",
    "Pull out the address parts (street, number, town, postcode) from: \"{person1}, "
    "{house:1..250} {street}, {town1}, {postcode}\"",
    "Which of these reviews are positive and which are negative? Give the star rating you "
    "would expect for each. (1) \"{good_review}\" (2) \"{bad_review}\" (3) \"{good_review}\"",
    "Extract the meeting decisions and action items from these notes: \"Agreed to move the "
    "launch to {month1}. {name1} to update the budget. No decision yet on the new logo. "
    "{name2} to call the printer by {weekday1}.\"",
    "Put these contact details into a table with columns name, email and city: {contacts}",
    "Find the ingredients and amounts in this recipe note: \"Whisk {e:2..4} eggs with "
    "{g:100..300/25} g of flour, add {ml:100..400/50} ml of milk and a pinch of salt, then "
    "fold in {fold}.\"",
    "Extract the start date, end date and cost of each course: \"The pottery course runs "
    "from {d1:1..14} {month1} to {d2:15..28} {month1} for {p1:80..200} dollars; the "
    "photography course runs from {d3:1..14} {month2} to {d4:15..28} {month2} for "
    "{p2:60..180} dollars.\"",
]


def receipt(rng: random.Random) -> str:
    items = rng.sample(POOLS["ingredient"], rng.randint(3, 5))
    return "; ".join(f"{item} {rng.randint(1, 9)}.{rng.randint(0, 99):02d}" for item in items)


def contacts(rng: random.Random) -> str:
    rows = []
    for _ in range(rng.randint(2, 4)):
        first, last = rng.choice(NAMES), rng.choice(SURNAMES)
        rows.append(f"{first} {last} ({first.lower()}.{last.lower()}@example.org, "
                    f"{rng.choice(TOWNS)})")
    return "; ".join(rows)


def phone(rng: random.Random) -> str:
    return f"0{rng.randint(1000, 9999)} {rng.randint(100000, 999999)}"


def postcode(rng: random.Random) -> str:
    letters = "ABCDEFGHJKLMNPRSTUWXYZ"
    return (f"{rng.choice(letters)}{rng.choice(letters)}{rng.randint(1, 19)} "
            f"{rng.randint(1, 9)}{rng.choice(letters)}{rng.choice(letters)}")


# ----------------------------------------------------------------------------------------------
# advice

ADVICE_FOLLOW = [
    "What if that doesn't work?",
    "Can you turn that into a step-by-step plan for this week?",
    "Which of those should I start with?",
    "What would you say to someone who disagrees with that advice?",
    "Give me the short version.",
    "What are the warning signs that I should ask a professional for help?",
    "How will I know if it's working?",
]

ADVICE_SHORT = [
    "I {adv_situation}. What should I do?",
    "I {adv_situation}. How should I handle it?",
    "I {adv_situation}. Any advice?",
    "I {adv_situation}. What would you do in my place?",
    "I {adv_situation}. What is one small step I could take today?",
    "How do I tell {tell_task}?",
    "What's a kind but honest way to tell {tell_task}?",
    "How can I {adv_goal}?",
    "What are good ways to {adv_goal}?",
    "What's your best advice for someone who wants to {adv_goal}?",
    "{adv_choice}",
    "What should I say when {adv_moment}?",
    "My friend {friend_situation}. How can I support them?",
]

ADVICE_LONG = [
    "Give me a detailed plan to {adv_goal} over the next {n:2..6} months, with concrete steps "
    "for each month.",
    "I {adv_situation}. Walk me through my options in detail, with the pros and cons of each.",
    "Write a thorough guide for someone who wants to {adv_goal}, covering common obstacles "
    "and how to overcome them.",
]

ADV_SITUATIONS = ["just started a new job and feel overwhelmed",
                  "keep putting off an important assignment",
                  "have been offered a promotion but I'm not sure I want it",
                  "find it hard to say no to extra work",
                  "disagree with my manager about a project",
                  "moved to a new city and don't know anyone",
                  "am nervous about a job interview next week",
                  "share a flat with someone who never cleans up",
                  "lent money to a friend who hasn't paid it back",
                  "feel stuck in my career", "have two job offers and can't decide",
                  "get anxious before speaking in meetings",
                  "want to go back to studying at 40",
                  "argued with my brother and we haven't spoken for weeks",
                  "have too many subscriptions and can't keep track of my spending",
                  "am burned out after a long year",
                  "forgot an important friend's birthday",
                  "received harsh feedback on my work",
                  "want to change careers but worry about money",
                  "struggle to concentrate when working from home",
                  "was asked to give a speech at a wedding",
                  "feel left out in a group chat with old friends",
                  "have a coworker who keeps missing deadlines that affect my work",
                  "can't decide which university course to choose",
                  "spend too much money on takeaway food",
                  "have a noisy upstairs neighbour",
                  "feel nervous about my first solo trip abroad",
                  "was passed over for a promotion",
                  "have trouble keeping in touch with friends since having a baby",
                  "don't enjoy my hobbies any more",
                  "am starting a new team and I'm the youngest person on it",
                  "need to give difficult feedback to a friend who works for me",
                  "keep comparing myself with people on social media",
                  "have a job interview for a role I'm not sure I'm qualified for",
                  "am retiring next year and worry about being bored",
                  "have been asked to lead a project for the first time",
                  "find group projects at university frustrating",
                  "was offered a job in another country",
                  "have to share a car with my sister and we keep arguing about it",
                  "feel guilty about taking holidays from work",
                  "am the only one in my family who wants to move abroad",
                  "keep agreeing to plans and then wanting to cancel them"]

ADV_GOALS = ["get better at public speaking", "build an emergency fund", "make new friends "
             "as an adult", "learn a language while working full time", "negotiate a higher "
             "salary", "become more organised", "improve my writing", "prepare for a job "
             "interview", "stop procrastinating", "become a better listener",
             "handle criticism calmly", "ask for a raise", "balance work and family life",
             "get more out of online courses", "write a good CV", "network without feeling "
             "awkward", "pay off a credit-card debt", "become more confident at work",
             "study more effectively", "manage my time better", "start saving for a "
             "house deposit", "make a good first impression at a new job",
             "deal with a difficult neighbour politely", "keep a long-distance friendship "
             "going", "learn to say no without feeling guilty", "prepare for a performance "
             "review", "run better meetings", "give useful feedback to colleagues",
             "recover from a bad day at work", "choose a good mentor", "take better notes "
             "in lectures", "plan for an early retirement", "get back into exercise after "
             "an injury", "stay motivated while job hunting", "make decisions faster"]

ADV_CHOICES = ["Should I take a gap year before university or start right away?",
               "Should I study something I love or something that pays well?",
               "Is it better to pay off my student loan early or to save and invest?",
               "Should I tell my manager I'm looking for another job?",
               "Should I accept a job that pays more but has worse hours?",
               "Is it worth buying a car if I live in a city with good buses?",
               "Should I freelance or look for a permanent job?",
               "Should I confront a friend who keeps cancelling plans?",
               "Is it a good idea to work for a friend's new company?",
               "Should I move back to my home town to be closer to my parents?",
               "Should I buy a house with a friend?",
               "Is it worth doing a master's degree straight after my first degree?",
               "Should I tell a friend that their partner was rude to me?",
               "Should I learn to drive at 35, or keep using public transport?",
               "Is it better to rent near work or buy further away?",
               "Should I switch to a four-day week for less pay?",
               "Should I take a pay cut to do work I find more meaningful?",
               "Should I go to a friend's wedding if I can barely afford the trip?",
               "Should I give my teenager a monthly allowance or pay for chores?",
               "Is it rude to leave a party early without saying goodbye?",
               "Should I keep a job I like or follow my partner to a new city?",
               "Should I lend my car to my cousin for a week?"]

ADV_MOMENTS = ["a colleague takes credit for my work", "someone asks me a question I can't "
               "answer in a meeting", "a friend asks to borrow money",
               "I need to turn down a wedding invitation from a close friend",
               "a customer is shouting at me", "I have to tell my team about a mistake I made",
               "my neighbour's music is too loud at night", "someone interrupts me repeatedly",
               "I need to ask my landlord to fix something for the third time",
               "a friend asks what I think of their new business idea and I have doubts",
               "my manager asks me to work another weekend",
               "someone gives me a gift I don't like",
               "a relative asks why I'm still single",
               "I'm asked about a gap in my CV during an interview",
               "a colleague cries at work", "a new acquaintance asks how much I earn",
               "I bump into an old friend I lost touch with"]

FRIEND_SITUATIONS = ["just lost their job", "is going through a breakup",
                     "is stressed about exams", "has just moved abroad",
                     "is caring for a sick parent", "seems withdrawn lately",
                     "is starting their own business", "is grieving a pet",
                     "has just become a parent", "is training for a marathon",
                     "failed their driving test", "is nervous about surgery",
                     "has been feeling lonely since retiring", "is in a lot of debt"]

TELL_TASKS = ["my flatmate that I'm moving out", "my boss that I'm resigning",
              "a friend that I can't come to their birthday", "my parents that I'm changing "
              "courses", "a client that the project will be late", "my team that our budget "
              "was cut", "a neighbour that their tree is blocking my light",
              "a friend that they hurt my feelings", "my partner that I want to change jobs",
              "a colleague that they talk too loudly on calls", "my family that I won't be "
              "home for the holidays", "my landlord that I'll be late with the rent",
              "a friend that I don't want to go on holiday with them again",
              "a student that their essay needs a lot of work",
              "my book club that I want to leave"]

# ----------------------------------------------------------------------------------------------
# planning

PLANNING_FOLLOW = [
    "Now make it cheaper.",
    "Can you turn it into a checklist?",
    "What could go wrong, and how should I prepare for it?",
    "Adjust the plan for someone with much less free time.",
    "Put the plan in a table.",
    "Which part of the plan would you cut first if I ran short of time?",
    "Add a backup option in case of bad weather.",
]

PLANNING_SHORT = [
    "Plan a {days:2..7}-day trip to {destination} for {traveller}.",
    "Help me plan {event} for {guests:6..40} guests on a budget of ${budget:100..1500/50}.",
    "Make a study schedule for {exam} with {weeks:2..10} weeks to go.",
    "Create a weekly workout plan for {fitness_person}.",
    "Plan a week of simple dinners for {diet_context}.",
    "Break {project} into steps with a rough timeline.",
    "I have {hours:2..6} free hours on {weekday1}. Help me plan them so I can {free_goal}.",
    "Make a checklist for {checklist_event}.",
    "Draft an agenda for {meeting}.",
    "Create a morning routine for {routine_person}.",
    "What's a realistic timeline for {project}?",
]

PLANNING_LONG = [
    "Create a detailed day-by-day itinerary for a {days:3..7}-day trip to {destination} for "
    "{traveller}, with morning, afternoon and evening plans.",
    "Write a complete project plan for {project}, with phases, tasks, a timeline and risks.",
    "Write a detailed {weeks:4..12}-week training plan to {train_goal}, explaining how each "
    "week builds on the last.",
    "Plan {event} in detail for {guests:10..60} guests: timeline, budget, shopping list and "
    "who does what.",
]

DESTINATIONS = ["Lisbon", "Kyoto", "the Scottish Highlands", "Mexico City", "Vienna",
                "Cape Town", "Istanbul", "the Norwegian fjords", "Hanoi", "Buenos Aires",
                "Montreal", "Marrakesh", "the Amalfi coast", "Seoul", "Copenhagen",
                "New Zealand's South Island", "Prague", "Sri Lanka", "Crete", "Vancouver"]

TRAVELLERS = ["a family with two young children", "a solo traveller on a tight budget",
              "two friends who love food", "a retired couple who don't like rushing",
              "a wheelchair user and a friend", "a photographer", "teenagers on a school trip",
              "a couple on their honeymoon", "someone who loves hiking", "a history buff"]

EVENTS = ["a surprise birthday party", "a garden barbecue", "a children's party",
          "a retirement dinner", "a neighbourhood street party", "a baby shower",
          "a quiz night", "a small wedding reception", "a team away-day", "a book launch",
          "a charity bake sale", "a family reunion picnic"]

EXAMS = ["a maths final", "a driving theory test", "a history exam", "a chemistry exam",
         "a language proficiency test", "university entrance exams", "a piano grade exam",
         "a professional accounting exam", "a biology exam"]

FITNESS_PEOPLE = ["a beginner with no equipment", "someone training for a 10 km run",
                  "an office worker with thirty minutes a day", "a 60-year-old who wants to "
                  "stay strong", "someone recovering from a long break",
                  "a parent who can only exercise at home", "a student with a busy timetable"]

DIET_CONTEXTS = ["a vegetarian student on a budget", "a family of five", "someone who hates "
                 "cooking", "two people who work late", "someone cutting down on sugar",
                 "a household with a nut allergy", "a runner in training"]

PROJECTS = ["renovating a small bathroom", "writing a 60-page thesis", "launching a small "
            "online shop", "organising a community book swap", "building a garden shed",
            "moving house", "learning to code in six months", "planning a wedding",
            "setting up a small podcast", "publishing a family recipe book",
            "switching a team to a new software tool", "redesigning a company website"]

FREE_GOALS = ["relax but also get some chores done", "learn something new", "see friends",
              "finally clear my inbox", "get outside", "start a creative project"]

CHECKLIST_EVENTS = ["moving into a new flat", "a first day at a new job", "a camping weekend",
                    "hosting a dinner party", "leaving for a month-long trip",
                    "a baby's first week at home", "a house viewing", "the start of a "
                    "university term", "a job interview", "closing the house for winter"]

MEETINGS = ["a weekly team meeting", "a kickoff meeting for a new project",
            "a parents' association meeting", "a one-to-one with a new team member",
            "a meeting to plan the office move", "a residents' meeting about parking",
            "a quarterly review with a client"]

ROUTINE_PEOPLE = ["a student with early lectures", "a night-shift nurse coming home",
                  "someone who works from home", "a parent of two school-age children",
                  "a person trying to be more productive", "a new runner"]

TRAIN_GOALS = ["run a first 5 km", "swim a kilometre without stopping", "do ten push-ups",
               "cycle 100 km in a day", "walk up a mountain", "improve flexibility"]

# ----------------------------------------------------------------------------------------------
# the pools that template slots draw from

POOLS = {
    # people, places, numbers
    "name": NAMES, "surname": SURNAMES, "person": person, "town": TOWNS, "company": COMPANIES,
    "institute": INSTITUTES, "month": MONTHS, "weekday": WEEKDAYS, "lang": LANGUAGES,
    "number_list": number_list, "fraction": fraction, "quadratic": quadratic,
    "phone": phone, "postcode": postcode, "receipt": receipt, "contacts": contacts,
    "school": ["Riverside Secondary School", "Hillcrest Academy", "Saint Orrin Primary",
               "the Larkfield Community School", "Northgate High", "Elm Park School"],
    "market": ["the north of the country", "coastal towns", "its online shop",
               "small university towns", "the capital"],
    "animal": ["hedgehogs", "foxes", "badgers", "red squirrels", "toads", "barn owls"],
    "gadget": ["Airwell 300 air purifier", "Brewmaster Mini coffee grinder",
               "QuietClean robot vacuum", "Nimbus bread maker", "Lumo desk lamp",
               "Heatwise oil-filled radiator"],
    "team": ["the Larkfield Rovers", "Port Avel United", "the Kessington Falcons",
             "Marrow Bay Athletic", "the Greywater Wanderers", "Eastholm City",
             "the Velmont Harriers", "Oakhaven Town"],
    # reasoning
    "matching_puzzle": matching_puzzle, "ordering_puzzle": ordering_puzzle,
    "sequence": sequence, "syl": SYLLOGISM_TERMS, "flawed_argument": FLAWED_ARGUMENTS,
    "correlation": CORRELATIONS, "fermi": FERMI, "riddle_item": RIDDLES,
    "odd_one_out": ODD_ONE_OUT, "decision": DECISIONS, "assumption_claim": ASSUMPTION_CLAIMS,
    "heavy_thing": ["iron", "bricks", "lead", "stones"],
    "light_thing": ["feathers", "cotton wool", "popcorn", "paper"],
    # coding
    "fn_task": FN_TASKS, "data_structure": DATA_STRUCTURES, "sql_task": SQL_TASKS,
    "sql_task_imperative": SQL_TASKS_IMPERATIVE, "bash_task": BASH_TASKS, "howto": HOWTOS,
    "regex_target": REGEX_TARGETS, "code_sample": CODE_SAMPLES, "buggy_code": BUGGY_CODE,
    "cs_concept": CS_CONCEPTS, "cs_pair": CS_PAIRS, "tool_choice": TOOL_CHOICES,
    "shell_command": SHELL_COMMANDS, "lang_question": LANG_QUESTIONS,
    "program_task": PROGRAM_TASKS, "algorithm": ALGORITHMS, "tutorial_topic": TUTORIAL_TOPICS,
    # writing
    "poem_form": POEM_FORMS, "poem_topic": POEM_TOPICS, "premise": PREMISES,
    "email_task": EMAIL_TASKS, "tweet_purpose": TWEET_PURPOSES, "product": PRODUCTS,
    "business": BUSINESSES, "occasion": OCCASIONS, "toast_occasion": TOAST_OCCASIONS,
    "letter_task": LETTER_TASKS, "thanks_for": THANKS_FOR, "scene": SCENES,
    "char_pair": CHAR_PAIRS, "dialogue_topic": DIALOGUE_TOPICS, "audience": AUDIENCES,
    "riddle_answer": RIDDLE_ANSWERS, "job_ad": JOB_ADS, "announcement": ANNOUNCEMENTS,
    "pov": POVS, "moral": MORALS, "funny_topic": FUNNY_TOPICS,
    "postcard_place": POSTCARD_PLACES, "claim": CLAIMS, "debate": DEBATES,
    "blog_topic": BLOG_TOPICS,
    # everyday
    "home_task": HOME_TASKS, "dish": DISHES, "ingredient": INGREDIENTS,
    "ingredients": ingredients, "food_item": FOOD_ITEMS, "trip": TRIPS,
    "travel_situation": TRAVEL_SITUATIONS, "habit_goal": HABIT_GOALS, "pet": PETS,
    "pet_problem": PET_PROBLEMS, "new_pet": NEW_PETS, "purchase": PURCHASES,
    "buy_choice": BUY_CHOICES, "maintenance": MAINTENANCE, "stain": STAINS, "fabric": FABRICS,
    "organise": ORGANISE, "expense": EXPENSES, "kids": KIDS, "substitute": SUBSTITUTES,
    "kitchen_fail": KITCHEN_FAILS, "guide_task": GUIDE_TASKS,
    "everyday_question": EVERYDAY_QUESTIONS,
    # stem
    "stem_concept": STEM_CONCEPTS, "device": DEVICES, "phenomenon": PHENOMENA,
    "stem_pair": STEM_PAIRS, "what_if": WHAT_IFS, "sci_method": SCI_METHODS,
    "process": PROCESSES, "material": MATERIALS, "stem_question": STEM_QUESTIONS,
    # humanities
    "hist_event": HIST_EVENTS, "hist_figure": HIST_FIGURES, "phil_idea": PHIL_IDEAS,
    "phil_concept": PHIL_CONCEPTS, "book": BOOKS, "art_movement": ART_MOVEMENTS,
    "artwork": ARTWORKS, "region": REGIONS, "geo_feature": GEO_FEATURES,
    "econ_concept": ECON_CONCEPTS, "econ_policy": ECON_POLICIES,
    "invention_hist": INVENTIONS_HIST, "daily_life": DAILY_LIFE, "compare_pair": COMPARE_PAIRS,
    "old_city": OLD_CITIES, "humanities_question": HUMANITIES_QUESTIONS,
    # roleplay
    "role": ROLES, "rp_task": RP_TASKS, "rp_question": RP_QUESTIONS, "coach_role": COACH_ROLES,
    "coach_task": COACH_TASKS, "persona": PERSONAS,
    # summarization and extraction
    "passage_short": lambda rng: passage(rng, 45, 110),
    "passage_long": lambda rng: passage(rng, 170, 340, paragraphs=True),
    "sum_instruction": SUM_INSTRUCTIONS, "sum_instruction_after": SUM_INSTRUCTIONS_AFTER,
    "sum_instruction_long": SUM_INSTRUCTIONS_LONG,
    "sum_instruction_long_after": SUM_INSTRUCTIONS_LONG_AFTER,
    "ext_instruction": EXT_INSTRUCTIONS, "ext_instruction_after": EXT_INSTRUCTIONS_AFTER,
    "ext_instruction_long": EXT_INSTRUCTIONS_LONG,
    "ext_instruction_long_after": EXT_INSTRUCTIONS_LONG_AFTER, "record_task": RECORD_TASKS,
    "restaurant": ["the Blue Anchor", "Casa Lucia", "the Green Fig", "Harbour Kitchen",
                   "Little Saigon", "the Olive Tree"],
    "job_title": ["warehouse supervisor", "junior accountant", "nursery assistant",
                  "software tester", "bus driver", "marketing coordinator", "lab technician",
                  "receptionist", "electrician"],
    "city": ["Lisbon", "Oslo", "Athens", "Dublin", "Warsaw", "Valencia", "Reykjavik", "Zagreb"],
    "letters": ["KA", "TR", "BX", "LM", "QF", "ZE"],
    "event_word": ["Summer Fair", "Jazz Night", "Food Festival", "Book Market",
                   "Winter Lantern Walk", "Kite Day"],
    "venue": ["Old Corn Exchange", "Riverside Park", "Town Hall", "Harbour Pavilion",
              "Saint Orrin Church Hall"],
    "hobby": ["chess", "tennis", "badminton", "the guitar", "volleyball", "table tennis",
              "bridge", "the cello"],
    "symptom": ["sore throat", "mild fever", "dry cough", "headache", "runny nose", "tiredness"],
    "medicine": ["paracetamol", "ibuprofen", "throat lozenges", "a saline nasal spray"],
    "stationery": ["A4 paper", "blue pens", "staplers", "sticky notes", "whiteboard markers",
                   "envelopes", "printer cartridges"],
    "street": ["Mill Street", "Harbour Road", "Orchard Lane", "Station Avenue", "Church Walk",
               "Kingfisher Close"],
    "good_review": ["Arrived early and works perfectly, very happy.", "Lovely staff and "
                    "the soup was delicious.", "Best purchase I've made this year.",
                    "Comfortable, well made and easy to clean."],
    "bad_review": ["Broke after two days and support never replied.", "Cold food and a very "
                   "long wait.", "Looks nothing like the photos.", "Far too noisy to use at "
                   "night."],
    "fold": ["a handful of blueberries", "grated cheese", "chopped herbs", "sliced apple"],
    # advice and planning
    "adv_situation": ADV_SITUATIONS, "adv_goal": ADV_GOALS, "adv_choice": ADV_CHOICES,
    "adv_moment": ADV_MOMENTS, "friend_situation": FRIEND_SITUATIONS, "tell_task": TELL_TASKS,
    "destination": DESTINATIONS, "traveller": TRAVELLERS, "event": EVENTS, "exam": EXAMS,
    "fitness_person": FITNESS_PEOPLE, "diet_context": DIET_CONTEXTS, "project": PROJECTS,
    "free_goal": FREE_GOALS, "checklist_event": CHECKLIST_EVENTS, "meeting": MEETINGS,
    "routine_person": ROUTINE_PEOPLE, "train_goal": TRAIN_GOALS,
}


def group(follow: list[str], templates: list[str]) -> list[tuple[list[str], str]]:
    """Pair each template with the follow-up turns that suit an answer to it."""
    return [(follow, t) for t in templates]


# category: (share of long prompts, short templates, long templates), in output order
CATEGORIES = {
    "reasoning": (0.12, group(REASONING_FOLLOW, REASONING_SHORT),
                  group(REASONING_FOLLOW, REASONING_LONG)),
    "writing": (0.18, group(WRITING_FOLLOW, WRITING_SHORT), group(WRITING_FOLLOW, WRITING_LONG)),
    "everyday": (0.12, group(EVERYDAY_FOLLOW, EVERYDAY_SHORT),
                 group(EVERYDAY_FOLLOW, EVERYDAY_LONG)),
    "coding": (0.12, group(CODE_FOLLOW, CODE_SHORT) + group(CODE_EXPLAIN_FOLLOW,
                                                            CODE_EXPLAIN_SHORT),
               group(CODE_FOLLOW, CODE_LONG) + group(CODE_EXPLAIN_FOLLOW, CODE_EXPLAIN_LONG)),
    "math": (0.10, group(MATH_FOLLOW, MATH_SHORT), group(MATH_FOLLOW, MATH_LONG)),
    "stem": (0.12, group(STEM_FOLLOW, STEM_SHORT), group(STEM_FOLLOW, STEM_LONG)),
    "summarization": (0.40, group(SUMMARY_FOLLOW, SUMMARY_SHORT),
                      group(SUMMARY_FOLLOW, SUMMARY_LONG)),
    "roleplay": (0.12, group(ROLEPLAY_FOLLOW, ROLEPLAY_SHORT),
                 group(ROLEPLAY_FOLLOW, ROLEPLAY_LONG)),
    "humanities": (0.16, group(HUMANITIES_FOLLOW, HUMANITIES_SHORT),
                   group(HUMANITIES_FOLLOW, HUMANITIES_LONG)),
    "extraction": (0.30, group(EXTRACTION_FOLLOW, EXTRACTION_SHORT),
                   group(EXTRACTION_FOLLOW, EXTRACTION_LONG)),
    "advice": (0.12, group(ADVICE_FOLLOW, ADVICE_SHORT), group(ADVICE_FOLLOW, ADVICE_LONG)),
    "planning": (0.22, group(PLANNING_FOLLOW, PLANNING_SHORT),
                 group(PLANNING_FOLLOW, PLANNING_LONG)),
}

# ----------------------------------------------------------------------------------------------
# filling templates

SLOT = re.compile(r"\{([a-z_]+?)(\d?)(?::(-?\d+)\.\.(-?\d+)(?:/(\d+))?)?\}")


def draw(key: str, rng: random.Random, used: set) -> str:
    """A value of ``POOLS[key]``, unlike the ones in ``used`` while the pool has others."""
    pool = POOLS[key]
    if callable(pool):
        value = pool(rng)
    else:
        value = rng.choice([x for x in pool if x not in used] or pool)
    used.add(value)
    return value


def fill(text: str, rng: random.Random, memo: dict | None = None) -> str:
    """``text`` with every slot filled (the rules are in the module docstring); ``memo``
    carries remembered values (and the values each pool has given) across calls."""
    memo = {} if memo is None else memo

    def one(m: re.Match) -> str:
        key, idx, lo, hi, step = m.groups()
        label = key + idx
        if label in memo:
            return memo[label]
        if lo is not None:
            value = str(rng.randrange(int(lo), int(hi) + 1, int(step or 1)))
        else:
            value = draw(key, rng, memo.setdefault("used " + key, set()))
        if idx or lo is not None:
            memo[label] = value
        return value

    for _ in range(6):
        text, n = SLOT.subn(one, text)
        if not n:
            return text
    raise ValueError(f"slots still unfilled after 6 rounds: {text[:200]!r}")


# ----------------------------------------------------------------------------------------------
# normalisation and the filters

def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def normalised(text: str) -> str:
    return " ".join(words(text))


def grams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i: i + n]) for i in range(len(w) - n + 1)}


def spec_bench_turns(path: Path | None = SPEC_BENCH) -> list[str]:
    """Every user turn of the Spec-Bench questions at ``path``; none if the file is absent."""
    if path is None or not Path(path).is_file():
        return []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [t for line in lines if line.strip() for t in json.loads(line).get("turns", [])]


def default_exclude(spec_bench: Path | None = SPEC_BENCH) -> list[str]:
    """The held-out prompts, and the Spec-Bench questions where that file exists."""
    lines = embedded_path("heldout_prompts.jsonl").read_text(encoding="utf-8").splitlines()
    held = [json.loads(line)["prompt"] for line in lines if line.strip()]
    return held + spec_bench_turns(spec_bench)


# ----------------------------------------------------------------------------------------------
# building the bank

def category_rows(category: str, seed: int) -> list[dict]:
    """``PER_CATEGORY`` prompts of one category with distinct texts, from its own rng."""
    p_long, short, long = CATEGORIES[category]
    rng = random.Random(f"{seed}:{category}")
    rows, seen = [], set()
    for _ in range(PER_CATEGORY * 50):
        if len(rows) == PER_CATEGORY:
            break
        is_long = rng.random() < p_long
        follow, template = rng.choice(long if is_long else short)
        text = fill(template, rng).strip()
        if normalised(text) in seen:
            continue
        seen.add(normalised(text))
        turns = [text]
        if rng.random() < TWO_TURN_SHARE:
            turns.append(fill(rng.choice(follow), rng))
        rows.append({"category": category, "turns": turns, "long": is_long})
    return rows


def build(seed: int = 0, exclude=()) -> tuple[list[dict], dict[str, int]]:
    """The rows (see :func:`build_prompts`) and how many rows each filter dropped."""
    per_category = [category_rows(c, seed) for c in CATEGORIES]
    candidates = [rows[i] for i in range(PER_CATEGORY) for rows in per_category
                  if i < len(rows)]
    banned_text = {normalised(t) for t in exclude}
    banned_grams = set().union(*(grams(t) for t in exclude))
    seen: set[str] = set()
    out, dropped = [], {"repeated": 0, "excluded": 0}
    for row in candidates:
        texts = [normalised(t) for t in row["turns"]]
        if any(t in seen for t in texts):
            dropped["repeated"] += 1
            continue
        if any(t in banned_text or grams(t) & banned_grams for t in texts):
            dropped["excluded"] += 1
            continue
        seen.add(texts[0])
        out.append({"id": f"large-{len(out) + 1:05d}", **row})
    return out, dropped


def build_prompts(seed: int = 0, exclude=()) -> list[dict]:
    """Rows ``{"id", "category", "turns", "long"}`` in a fixed order (the categories
    interleaved), with distinct first turns and no turn sharing ``NGRAM`` consecutive words
    with a text of ``exclude``; ids are consecutive after the filters."""
    return build(seed, exclude)[0]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m specbench.data.prompt_bank",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None,
                    help="output JSON lines (default: the embedded prompts-large.jsonl)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--spec-bench", type=Path, default=SPEC_BENCH,
                    help="Spec-Bench question.jsonl whose questions are excluded, if it exists")
    args = ap.parse_args(argv)
    out = args.out or embedded_path("prompts-large.jsonl")
    bench = spec_bench_turns(args.spec_bench)
    print(f"spec-bench: {'used' if bench else 'NOT used (absent)'}: {args.spec_bench} "
          f"({len(bench)} turns excluded)")
    rows, dropped = build(args.seed, default_exclude(args.spec_bench))
    with atomic_open(out, "w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"dropped: {dropped['repeated']} repeating an earlier prompt, "
          f"{dropped['excluded']} sharing {NGRAM} words with an excluded text")
    for category, n in collections.Counter(r["category"] for r in rows).items():
        print(f"  {category:14s} {n}")
    print(f"{len(rows)} rows, {sum(len(r['turns']) > 1 for r in rows)} with two turns, "
          f"{sum(r['long'] for r in rows)} long -> {out}")


if __name__ == "__main__":
    main()
