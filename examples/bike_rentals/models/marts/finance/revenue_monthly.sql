with rentals as (
    select
        rental_id,
        member_id,
        rental_date,
        bike_type,
        duration_minutes,
        paid_pence
    from {{ ref('fct_rentals') }}
    where rental_status = 'completed'
),

members as (
    select
        member_id,
        membership_plan
    from {{ ref('stg_members') }}
)

select
    strftime(r.rental_date, '%Y-%m') as rental_month,
    m.membership_plan,
    count(*) as rental_count,
    sum(case when r.bike_type = 'electric' then 1 else 0 end) as electric_rentals,
    sum(r.duration_minutes) as ride_minutes,
    sum(r.paid_pence) as revenue_pence,
    {{ pence_to_pounds('sum(r.paid_pence)') }} as revenue,
    {{ pence_to_pounds('sum(r.paid_pence) / count(*)') }} as average_fare
from rentals as r
inner join members as m on r.member_id = m.member_id
group by strftime(r.rental_date, '%Y-%m'), m.membership_plan
