DROP TABLE security_config;
DROP TABLE users;
