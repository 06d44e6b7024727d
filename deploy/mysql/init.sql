-- earshot on MySQL 8 / MariaDB 10.10+: one database per service and a user per database that may
-- connect from any host (other machines, pods) but touch nothing except its own database.
-- No table is created here (`earshot migrate` does that) and no password is written here.
--
-- Passwords come from session variables set before this file runs, on standard input, so they
-- appear neither in this file, nor in the process list, nor in the shell history:
--
--   { echo "SET @auth_password = '$AUTH_DB_PASSWORD';"; cat deploy/mysql/init.sql; } | sudo mysql
--
-- @auth_password, @jobs_password and @notifier_password set the users auth_user, jobs_user and
-- notifier_user. A user created without one gets a random password, printed once below and
-- stored nowhere else (the server keeps only its hash). Running the file again is safe: nothing
-- is dropped, and a user keeps its password unless a new one is given. See docs/mysql.md.

CREATE DATABASE IF NOT EXISTS `auth` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE DATABASE IF NOT EXISTS `jobs` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE DATABASE IF NOT EXISTS `notifier` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;

-- A helper that lives only while this file runs (MySQL has no IF outside stored programs).
DROP PROCEDURE IF EXISTS `auth`.`earshot_account`;
DELIMITER //
CREATE PROCEDURE `auth`.`earshot_account`(
    IN account VARCHAR(80), IN db VARCHAR(64), IN secret VARCHAR(255)
)
BEGIN
    DECLARE known INT DEFAULT 0;
    DECLARE generated VARCHAR(64) DEFAULT NULL;
    SELECT COUNT(*) INTO known FROM mysql.user WHERE User = account AND Host = '%';
    IF (secret IS NULL OR secret = '') AND known = 0 THEN
        SET generated = HEX(RANDOM_BYTES(18));
        SET secret = generated;
    END IF;
    IF known = 0 THEN
        SET @earshot_sql = CONCAT('CREATE USER ', QUOTE(account), '@''%'' IDENTIFIED BY ',
                                  QUOTE(secret));
    ELSEIF secret IS NOT NULL AND secret <> '' THEN
        SET @earshot_sql = CONCAT('ALTER USER ', QUOTE(account), '@''%'' IDENTIFIED BY ',
                                  QUOTE(secret));
    ELSE
        SET @earshot_sql = 'DO 0';
    END IF;
    PREPARE earshot_statement FROM @earshot_sql;
    EXECUTE earshot_statement;
    DEALLOCATE PREPARE earshot_statement;
    SET @earshot_sql = NULL;
    -- What migrations and the service need, on its own database only: no FILE, PROCESS, SUPER,
    -- GRANT OPTION or any global privilege.
    SET @earshot_sql = CONCAT('GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP, ',
                              'REFERENCES ON `', REPLACE(db, '`', '``'), '`.* TO ',
                              QUOTE(account), '@''%''');
    PREPARE earshot_statement FROM @earshot_sql;
    EXECUTE earshot_statement;
    DEALLOCATE PREPARE earshot_statement;
    SET @earshot_sql = NULL;
    IF generated IS NOT NULL THEN
        SELECT account AS `user`, generated AS `generated password (shown once, keep it secret)`;
    END IF;
END //
DELIMITER ;

CALL `auth`.`earshot_account`('auth_user', 'auth', @auth_password);
CALL `auth`.`earshot_account`('jobs_user', 'jobs', @jobs_password);
CALL `auth`.`earshot_account`('notifier_user', 'notifier', @notifier_password);
DROP PROCEDURE `auth`.`earshot_account`;
SET @auth_password = NULL, @jobs_password = NULL, @notifier_password = NULL;
