select
    l.loan_id,
    l.member_id,
    b.title,
    l.loaned_on,
    date_diff('day', l.loaned_on, date '2024-04-01') as days_out
from {{ ref('stg_loans') }} l
join {{ ref('stg_books') }} b on b.book_id = l.book_id
where l.returned_on is null
