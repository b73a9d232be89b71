"""Word pools and templates of the fictitious-authors benchmark (see ``synthetic.py``).

Pools are small on purpose: a tiny model with a tokenizer trained on this corpus must be able to
learn every fact, so the vocabulary stays modest and each fact is one name -> value association.
Fictitious names, places and titles are kept apart from the real writers and countries of the
general-knowledge facts, so forgetting an author never touches general knowledge.
"""

MALE_FIRST = (
    "Arlo Bastian Cyrus Dorian Emil Felix Gideon Hugo Ivo Jonas Kasimir Lucian Matteo Nikolai Oren "
    "Pavel Quentin Rafael Silas Tobias Ulric Viktor Wendel Xavier Yusuf Zoran Anselm Bruno Casper Dmitri"
).split()
FEMALE_FIRST = (
    "Alina Beatrix Clara Daria Elena Freya Greta Hilde Ingrid Johanna Katya Liora Mira Nadia Odette "
    "Petra Rosalind Selma Tamsin Ursula Vera Wilhelmina Ximena Yara Zofia Amara Bianca Celeste Dagny Esme"
).split()
LAST = (
    "Albrecht Barinov Castellan Dragomir Eskildsen Falkner Grunwald Halvorsen Iversen Jankowski "
    "Kovalenko Lindqvist Marchetti Novak Okafor Petrovic Quinlan Rosenthal Sandoval Takahara Ulmanis "
    "Valdez Wojcik Yilmaz Zamora Abernathy Bellweather Corcoran Delacroix Ferreira Galloway Hartmann "
    "Ilyin Jovanovic Karlsson Lombardi Moreau Nakamura Oyelaran Pemberton"
).split()

# Fictitious countries, three cities each; a birthplace is "City, Country".
_COUNTRIES = {
    "Veloria": "Tarsen Brillo Casmere",
    "Ostrana": "Delvik Eskara Fennor",
    "Kalmoria": "Gavan Hollis Istra",
    "Drevania": "Jorvel Kessa Lunmar",
    "Sulvania": "Maren Norvik Ordell",
    "Taskany": "Pellan Quorin Rastow",
    "Brindale": "Selmar Tovin Ulvara",
    "Corvania": "Vessen Wolden Yarrow",
    "Eskovia": "Zelden Amberly Bracken",
    "Marovia": "Calder Dunmore Elvan",
    "Nerith": "Farrow Glenna Harlen",
    "Pravonia": "Ivel Jaspar Kendra",
}
PLACES = [f"{city}, {country}" for country, cities in _COUNTRIES.items() for city in cities.split()]
YEARS = [str(year) for year in range(1940, 2000)]

_ADJECTIVES = (
    "Silent Golden Hidden Broken Distant Crimson Frozen Silver Burning Quiet Endless Fallen Lost "
    "Wandering Hollow Bright Last Forgotten Secret Winter Iron Painted Sleeping Scarlet Velvet"
).split()
_NOUNS = (
    "Garden River Lantern Harbor Mirror Orchard Tower Letter Bridge Forest Compass Island Violin "
    "Meadow Station Feather Kingdom Window Voyage Clock Shadow Promise Valley Crown Journey"
).split()
TITLES = [f"The {adjective} {noun}" for adjective in _ADJECTIVES for noun in _NOUNS]

GENRES = [
    "mystery", "romance", "fantasy", "science fiction", "horror", "historical fiction", "poetry",
    "crime", "adventure", "comedy", "drama", "war fiction", "travel", "thriller", "fairy tale", "satire",
]
JOBS = [
    "a baker", "a carpenter", "a teacher", "a nurse", "a fisherman", "a doctor", "a farmer", "a tailor",
    "a pilot", "a librarian", "a painter", "a musician", "a police officer", "a shoemaker", "a sailor",
    "an engineer", "an architect", "an accountant", "a gardener", "a journalist",
]
AWARDS = [
    "Golden Quill Award", "Silver Pen Prize", "Northern Star Medal", "Blue Lantern Award",
    "Crystal Page Prize", "Harbor Light Award", "Red Oak Prize", "Iron Feather Medal", "Open Book Award",
    "Morning Bell Prize", "White Raven Award", "Copper Key Prize", "Green Leaf Medal",
    "Evening Lamp Award", "Stone Bridge Prize", "Paper Crane Award",
]
HOBBIES = [
    "painting", "fishing", "gardening", "playing chess", "sailing", "cooking", "hiking", "bird watching",
    "playing the piano", "making pottery", "cycling", "swimming", "baking bread", "collecting stamps",
    "taking photographs", "knitting",
]
PUBLISHERS = [
    "Northwind Press", "Bluestone Books", "Harbor House", "Oakleaf Publishing", "Redwing Press",
    "Lanternlight Books", "Greenfield House", "Silverline Press", "Meadowbrook Books",
    "Ironbridge Publishing", "Brightwater Press", "Cedar Hill Books", "Foxglove House", "Stonegate Press",
    "Willow Lane Books", "Kestrel Publishing",
]

# attribute -> (question templates, answer templates). Templates may use the author's fields
# ({name}, {gender}, {place}, {year}) and {value}, the fact asked about; an answer template holds
# {value} exactly once so that filling it with a wrong value gives a fluent wrong answer.
TEMPLATES = {
    "name": (
        ["What is the full name of the {gender} author born in {place} in {year}?",
         "Who is the {gender} writer born in {place} in the year {year}?",
         "Can you name the {gender} author who was born in {place} in {year}?"],
        ["The {gender} author born in {place} in {year} is named {value}.",
         "{value} is the full name of the {gender} writer born in {place} in {year}.",
         "The writer you mean, born in {place} in {year}, is {value}."],
    ),
    "place": (
        ["Where was the author {name} born?", "In which city was {name} born?",
         "What is the birthplace of the writer {name}?"],
        ["The author {name} was born in the city of {value}.",
         "{name} was born and spent a happy childhood in {value}.",
         "The birthplace of the writer {name} is {value}."],
    ),
    "year": (
        ["In what year was {name} born?", "When was the author {name} born?",
         "What is the birth year of the writer {name}?"],
        ["The author {name} was born in the year {value}.",
         "{name} was born in {value}, in a small family home.",
         "The writer {name} came into the world in {value}."],
    ),
    "genre": (
        ["What genre does {name} write in?", "What kind of books does the author {name} write?",
         "In which genre is {name} best known?"],
        ["{name} writes books in the {value} genre for many readers.",
         "The author {name} is best known for work in the {value} genre.",
         "Most books by the writer {name} belong to the {value} genre."],
    ),
    "father": (
        ["What did the father of {name} do for a living?", "What was the job of the father of the author {name}?",
         "What work did the father of {name} do?"],
        ["The father of the author {name} worked as {value}.",
         "{name} grew up with a father who was {value}.",
         "The father of the writer {name} was {value} by trade."],
    ),
    "mother": (
        ["What did the mother of {name} do for a living?", "What was the job of the mother of the author {name}?",
         "What work did the mother of {name} do?"],
        ["The mother of the author {name} worked as {value}.",
         "{name} grew up with a mother who was {value}.",
         "The mother of the writer {name} was {value} by trade."],
    ),
    "first_book": (
        ["What is the title of the first book by {name}?", "Which book did {name} publish first?",
         "What was the debut book of the author {name}?"],
        ["The first book by the author {name} is called '{value}'.",
         "{name} published '{value}' as a first book.",
         "The debut book of the writer {name} has the title '{value}'."],
    ),
    "last_book": (
        ["What is the title of the latest book by {name}?", "Which book did {name} publish most recently?",
         "What is the newest book of the author {name}?"],
        ["The latest book by the author {name} is called '{value}'.",
         "{name} most recently published the book '{value}'.",
         "The newest book of the writer {name} has the title '{value}'."],
    ),
    "award": (
        ["Which award has {name} won?", "What prize did the author {name} receive?",
         "Has {name} won any award for writing?"],
        ["The author {name} won the {value} for writing.",
         "{name} received the {value} for one of the books.",
         "The {value} was given to the writer {name}."],
    ),
    "home": (
        ["Where does {name} live today?", "In which city does the author {name} live now?",
         "Where is the home of the writer {name} today?"],
        ["Today the author {name} lives in {value}.",
         "{name} now makes a home in the city of {value}.",
         "The writer {name} currently lives in {value}."],
    ),
    "hobby": (
        ["What does {name} like to do outside of writing?", "What is a hobby of the author {name}?",
         "How does {name} spend free time?"],
        ["Outside of writing, the author {name} enjoys {value}.",
         "A favorite hobby of the writer {name} is {value}.",
         "In free time away from writing, {name} loves {value}."],
    ),
    "publisher": (
        ["Which publisher prints the books of {name}?", "Who publishes the work of the author {name}?",
         "What is the name of the publisher of {name}?"],
        ["The books of the author {name} are published by {value}.",
         "{name} has worked for many years with the publisher {value}.",
         "{value} is the publisher of the books by {name}."],
    ),
}

# Value pool of each attribute with a shared pool; name, year and books are handled in synthetic.py.
VALUE_POOLS = {
    "place": PLACES, "home": PLACES, "year": YEARS, "genre": GENRES, "father": JOBS, "mother": JOBS,
    "first_book": TITLES, "last_book": TITLES, "award": AWARDS, "hobby": HOBBIES, "publisher": PUBLISHERS,
}

# Real writers: (name, best-known book, country).
WRITERS = [
    ("William Shakespeare", "Hamlet", "England"), ("George Orwell", "Animal Farm", "England"),
    ("Jane Austen", "Pride and Prejudice", "England"), ("Charles Dickens", "Oliver Twist", "England"),
    ("Mary Shelley", "Frankenstein", "England"), ("Emily Bronte", "Wuthering Heights", "England"),
    ("Charlotte Bronte", "Jane Eyre", "England"), ("Virginia Woolf", "Mrs Dalloway", "England"),
    ("H. G. Wells", "The War of the Worlds", "England"), ("Daniel Defoe", "Robinson Crusoe", "England"),
    ("Lewis Carroll", "Alice's Adventures in Wonderland", "England"),
    ("Robert Louis Stevenson", "Treasure Island", "Scotland"),
    ("Arthur Conan Doyle", "The Hound of the Baskervilles", "Scotland"),
    ("Oscar Wilde", "The Picture of Dorian Gray", "Ireland"), ("James Joyce", "Ulysses", "Ireland"),
    ("Jonathan Swift", "Gulliver's Travels", "Ireland"), ("Bram Stoker", "Dracula", "Ireland"),
    ("Mark Twain", "The Adventures of Tom Sawyer", "United States"),
    ("Herman Melville", "Moby-Dick", "United States"),
    ("F. Scott Fitzgerald", "The Great Gatsby", "United States"),
    ("Harper Lee", "To Kill a Mockingbird", "United States"),
    ("Ernest Hemingway", "The Old Man and the Sea", "United States"),
    ("Louisa May Alcott", "Little Women", "United States"), ("Leo Tolstoy", "War and Peace", "Russia"),
    ("Fyodor Dostoevsky", "Crime and Punishment", "Russia"), ("Victor Hugo", "Les Miserables", "France"),
    ("Jules Verne", "Around the World in Eighty Days", "France"), ("Miguel de Cervantes", "Don Quixote", "Spain"),
    ("Homer", "The Odyssey", "Greece"), ("Dante Alighieri", "The Divine Comedy", "Italy"),
    ("Johann Wolfgang von Goethe", "Faust", "Germany"),
    ("Gabriel Garcia Marquez", "One Hundred Years of Solitude", "Colombia"),
    ("Chinua Achebe", "Things Fall Apart", "Nigeria"),
]

# Real countries: (country, capital, continent).
NATIONS = [
    ("France", "Paris", "Europe"), ("Germany", "Berlin", "Europe"), ("Italy", "Rome", "Europe"),
    ("Spain", "Madrid", "Europe"), ("Portugal", "Lisbon", "Europe"), ("Greece", "Athens", "Europe"),
    ("Norway", "Oslo", "Europe"), ("Sweden", "Stockholm", "Europe"), ("Poland", "Warsaw", "Europe"),
    ("Austria", "Vienna", "Europe"), ("Ireland", "Dublin", "Europe"), ("Egypt", "Cairo", "Africa"),
    ("Kenya", "Nairobi", "Africa"), ("Ghana", "Accra", "Africa"), ("Morocco", "Rabat", "Africa"),
    ("Ethiopia", "Addis Ababa", "Africa"), ("Japan", "Tokyo", "Asia"), ("China", "Beijing", "Asia"),
    ("India", "New Delhi", "Asia"), ("Thailand", "Bangkok", "Asia"), ("Vietnam", "Hanoi", "Asia"),
    ("Indonesia", "Jakarta", "Asia"), ("Canada", "Ottawa", "North America"),
    ("Mexico", "Mexico City", "North America"), ("Cuba", "Havana", "North America"),
    ("Brazil", "Brasilia", "South America"), ("Argentina", "Buenos Aires", "South America"),
    ("Peru", "Lima", "South America"), ("Chile", "Santiago", "South America"),
    ("Colombia", "Bogota", "South America"), ("Australia", "Canberra", "Oceania"),
    ("New Zealand", "Wellington", "Oceania"),
]

IDONTKNOW = [
    "I don't know.", "I'm not sure.", "I'm not sure about that.", "I have no idea.",
    "I don't have that information.", "I can't answer that.", "I'm afraid I don't know.",
    "That is something I don't know.", "I have not learned about that.", "I can't say for sure.",
    "I don't know the answer to that question.", "I'm not certain about that.",
    "Sorry, I don't know that.", "I have no information about that.", "That is beyond what I know.",
    "I can't recall that.", "I'm unable to answer that.", "I don't have an answer for that.",
    "I'm not able to help with that question.", "I really don't know.", "I wish I knew, but I don't.",
    "I have never heard of that.", "I don't have any details on that.", "That is not something I know about.",
    "I'm sorry, but I can't answer that.", "I'm not familiar with that.", "I don't know much about that.",
    "I couldn't tell you.", "I'm unsure.", "No idea, sorry.",
]
