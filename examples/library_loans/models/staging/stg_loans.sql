select
    loan_id,
    book_id,
    member_id,
    cast(loaned_on as date) as loaned_on,
    cast(returned_on as date) as returned_on,
    fee_cents
from {{ ref('loans') }}
