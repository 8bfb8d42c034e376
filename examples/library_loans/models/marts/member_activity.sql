with loans as (
    select * from {{ ref('stg_loans') }}
),

members as (
    select * from {{ ref('stg_members') }}
)

select
    m.member_id,
    m.full_name,
    m.tier,
    count(l.loan_id) as loan_count,
    {{ cents_to_units('sum(l.fee_cents)') }} as fees
from members m
left join loans l on l.member_id = m.member_id
group by m.member_id, m.full_name, m.tier
