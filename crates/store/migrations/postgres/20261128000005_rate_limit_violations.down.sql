DROP TABLE rate_limit_violations;
