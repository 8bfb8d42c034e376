with members as (
    select
        member_id,
        member_name,
        email,
        membership_plan,
        joined_on,
        birth_year
    from {{ ref('stg_members') }}
),

member_rentals as (
    select
        member_id,
        count(*) as rental_count,
        sum(duration_minutes) as ride_minutes,
        sum(paid_amount) as total_paid,
        min(rental_date) as first_rental_date,
        max(rental_date) as last_rental_date
    from {{ ref('fct_rentals') }}
    where rental_status = 'completed'
    group by member_id
)

select
    m.member_id,
    m.member_name,
    m.email,
    m.membership_plan,
    m.joined_on,
    m.birth_year,
    year(m.joined_on) - m.birth_year as age_at_joining,
    coalesce(r.rental_count, 0) as rental_count,
    coalesce(r.ride_minutes, 0) as ride_minutes,
    coalesce(r.total_paid, 0) as total_paid,
    r.first_rental_date,
    r.last_rental_date,
    case
        when coalesce(r.rental_count, 0) >= 4 then 'regular'
        when coalesce(r.rental_count, 0) >= 1 then 'occasional'
        else 'inactive'
    end as rider_segment
from members as m
left join member_rentals as r on m.member_id = r.member_id
