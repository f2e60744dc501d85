"""Problems: one incident that affects several customers, whose tickets are linked, told at once
in each customer's language, and closed together (README "One problem, many customers")."""
