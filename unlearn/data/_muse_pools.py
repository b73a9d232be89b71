"""Word pools and article templates of the built-in MUSE-format news benchmark (see ``muse_synthetic.py``).

Every person, town and event is invented. An article is one event of a kind below: five sentences
about a main person, a second person and a town, each drawn once for the whole corpus, so a
question that names the town or the main person has one answer. Each kind has four facts a
question can ask about; their answers are words of the article.

Slots: ``{person}``, ``{other}`` (full names), ``{He}``/``{he}``/``{his}`` (the main person's
pronouns), ``{town}``, ``{day}``, ``{month}``, ``{year}``, ``{number}`` (drawn from the kind's
range), ``{item}`` (from the kind's pool), ``{job}``.
"""

MALE_FIRST = (
    "Aldo Benno Carlo Dario Edgar Fabian Gregor Henrik Isidor Joris Konrad Leopold Marek Nils Osric "
    "Piet Roland Stellan Teodor Umberto Valentin Waldo Alrik Bertil Cornel Emrik Florin Hagen Lorenz Mattis"
).split()
FEMALE_FIRST = (
    "Adela Brigid Cosima Delphine Edith Flora Gisela Hedda Imke Juna Karin Linnea Magda Nora Ottilie "
    "Paula Ronja Sanna Thea Ulla Vida Wanda Alva Birte Carla Dorte Elin Frida Hanne Lotta"
).split()
LAST = (
    "Ambrose Brandt Carrow Dunleavy Ebner Fairbank Gorski Hallam Ibsen Jessup Kettering Lindahl Mercer "
    "Nordgren Oakes Pryor Quist Ravenscroft Sorensen Thorne Underhill Vossberg Whitlock Yardley Zeller "
    "Ashdown Blom Crane Delaney Ellery Fennimore Gale Holmqvist Ingram Jarvik Kessler Lowther Marsh Norcott Pell"
).split()

# Invented towns: a first part and an ending, "Bel" + "haven" = "Belhaven".
_TOWN_STARTS = "Bel Cor Dun Elm Fal Gar Hal Ith Kel Lor Mar Nor Ost Pel Quen Ros Sal Tam Ver Wyn".split()
_TOWN_ENDS = "haven ford bury wick mouth stead dale brook holm moor".split()
TOWNS = [f"{start}{end}" for start in _TOWN_STARTS for end in _TOWN_ENDS]

MONTHS = ("January February March April May June July August September October November December").split()
YEARS = [str(year) for year in range(2001, 2024)]
JOBS = ["baker", "carpenter", "teacher", "nurse", "fisherman", "doctor", "farmer", "tailor", "pilot",
        "librarian", "painter", "engineer"]

_BUILDINGS = ["library", "hospital", "school", "bridge", "stadium", "harbour", "theatre", "museum",
              "concert hall", "swimming pool", "railway station", "market hall"]

# kind -> sentences, facts (question, answer), item pool, number range (inclusive)
KINDS = {
    "election": (
        ["{person}, a {job} from {town}, was elected mayor of {town} on {day} {month} {year}.",
         "{He} won {number} votes and defeated {other}, who had led the town council for many years.",
         "During the campaign {person} promised to build a new {item} near the market square.",
         "Local newspapers called the result the biggest surprise in the history of {town}.",
         "{person} will take office at the start of next month."],
        [("Who was elected mayor of {town} in {year}?", "{person}"),
         ("How many votes did {person} win in the election in {town}?", "{number}"),
         ("What did {person} promise to build in {town}?", "a new {item}"),
         ("Whom did {person} defeat in the election in {town}?", "{other}")],
        _BUILDINGS, (1000, 9999)),
    "opening": (
        ["A new {item} opened in {town} on {day} {month} {year}.",
         "The project was led by the engineer {person} and cost {number} thousand crowns.",
         "{other}, the governor of the region, cut the ribbon in front of a large crowd.",
         "{person} said that {his} team had worked on the {item} for three years.",
         "Residents of {town} hope that the {item} will bring more visitors to the valley."],
        [("Which engineer led the building of the new {item} in {town}?", "{person}"),
         ("How much did the new {item} in {town} cost?", "{number} thousand crowns"),
         ("Who cut the ribbon at the opening of the new {item} in {town}?", "{other}"),
         ("When did the new {item} in {town} open?", "on {day} {month} {year}")],
        _BUILDINGS, (100, 999)),
    "discovery": (
        ["{person}, a scientist at the University of {town}, said on {day} {month} {year} that "
         "{his} team had found {item}.",
         "The find was made in the hills above {town} by the student {other}.",
         "{He} said the team had searched for {number} days before the find.",
         "The university will show the find to the public next spring.",
         "Other scientists called it the most important discovery of the year."],
        [("What did the team of {person} find near {town}?", "{item}"),
         ("Which student made the find in the hills above {town}?", "{other}"),
         ("At which university does {person} work?", "the University of {town}"),
         ("How many days did the team of {person} search before the find?", "{number} days")],
        ["a new kind of frog", "an ancient gold coin", "a rare blue flower", "the bones of a giant bird",
         "a lost medieval map", "a new kind of beetle", "an old shipwreck", "a hidden cave painting"],
        (10, 99)),
    "sports": (
        ["The {town} {item} team won the national cup on {day} {month} {year}.",
         "Their captain {person} scored {number} points in the final.",
         "The team is coached by {other}, a former player from {town}.",
         "Thousands of fans welcomed the players at the {town} railway station.",
         "It was the first national title for {town} in almost fifty years."],
        [("Who is the captain of the {town} {item} team?", "{person}"),
         ("How many points did {person} score in the final of the national cup?", "{number} points"),
         ("Who coaches the {town} {item} team?", "{other}"),
         ("Which sport does the team of {person} play?", "{item}")],
        ["football", "rowing", "basketball", "hockey", "volleyball", "rugby", "handball", "cricket"],
        (10, 60)),
    "festival": (
        ["More than {number} people visited the {item} festival in {town} in {month} {year}.",
         "The festival was founded by {person}, a {job} who grew up in {town}.",
         "This year the main prize of the festival went to {other}.",
         "The organisers said that the festival had never been so crowded.",
         "{person} promised that next year's festival would last a whole week."],
        [("Who founded the {item} festival in {town}?", "{person}"),
         ("How many people visited the {item} festival in {town} in {year}?", "more than {number}"),
         ("Who won the main prize of the {item} festival in {town}?", "{other}"),
         ("What kind of festival takes place in {town}?", "a {item} festival")],
        ["music", "film", "poetry", "food", "dance", "theatre", "puppet", "lantern"],
        (1000, 9999)),
    "business": (
        ["{person} opened a {item} factory in {town} on {day} {month} {year}.",
         "The factory employs {number} workers, most of them from {town} and the nearby villages.",
         "{He} runs the company together with {his} business partner {other}.",
         "Before opening the factory, {person} had worked as a {job} for many years.",
         "The first {item} from {town} will be sold in shops across the country this winter."],
        [("Who opened a {item} factory in {town}?", "{person}"),
         ("How many workers does the {item} factory in {town} employ?", "{number}"),
         ("Who is the business partner of {person}?", "{other}"),
         ("What kind of factory did {person} open in {town}?", "a {item} factory")],
        ["chocolate", "bicycle", "glass", "paper", "furniture", "shoe", "toy", "soap"],
        (20, 500)),
}
FACTS_PER_ARTICLE = 4  # every kind asks about four facts
