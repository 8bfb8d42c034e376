with loans as (
    select * from {{ ref('stg_loans') }}
),

books as (
    select * from {{ ref('stg_books') }}
),

counts as (
    select
        b.book_id,
        b.title,
        b.genre,
        count(l.loan_id) as times_loaned
    from books b
    left join loans l on l.book_id = b.book_id
    group by b.book_id, b.title, b.genre
)

select
    book_id,
    title,
    genre,
    times_loaned,
    rank() over (partition by genre order by times_loaned desc) as genre_rank
from counts
where times_loaned > 0
