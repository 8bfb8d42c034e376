select
    book_id,
    title,
    author,
    published_year,
    lower(genre) as genre
from {{ ref('books') }}
