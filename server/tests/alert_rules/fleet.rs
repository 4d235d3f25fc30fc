//! Restarts and fleets: the state lives in PostgreSQL, so a restarted server does not
//! fire again and still resolves; several servers on one database claim each due rule
//! once, so every transition is written exactly once.

use serde_json::json;

use crate::{
    add_channel, alert_settings, create_rule, evaluations_pass, notified, send_errors,
    spawn_alerting_app, wait_for,
};
use log_ingestion_test_support::spawn_app_on;

#[tokio::test]
async fn a_restart_while_firing_writes_no_second_firing_and_the_resolve_still_comes() {
    let mut app = spawn_alerting_app().await;
    add_channel(&app, "ops").await;
    let rule = create_rule(
        &app,
        json!({"name": "checkout errors", "kind": "count", "threshold": 0, "window": "5s",
               "interval": "1s", "search": {"service": "checkout"}, "channels": ["ops"]}),
    )
    .await;
    send_errors(&app, "checkout", 2).await;
    wait_for(20, "firing", || async {
        notified(&app, rule).await == ["firing"]
    })
    .await;
    app.stop().await;
    let restarted = spawn_app_on(
        app.database.clone(),
        app.database_url.clone(),
        alert_settings,
    )
    .await;
    // Still failing after the restart: the restarted server evaluates it as firing.
    send_errors(&restarted, "checkout", 1).await;
    evaluations_pass(&restarted, rule, 2).await;
    assert_eq!(notified(&restarted, rule).await, ["firing"]);
    wait_for(30, "the resolve", || async {
        notified(&restarted, rule).await.len() == 2
    })
    .await;
    evaluations_pass(&restarted, rule, 2).await;
    assert_eq!(notified(&restarted, rule).await, ["firing", "resolved"]);
    app.pool.close().await;
    restarted.stop_and_drop_database().await;
}

#[tokio::test]
async fn three_servers_on_one_database_write_each_transition_once() {
    let first = spawn_alerting_app().await;
    let second = spawn_app_on(
        first.database.clone(),
        first.database_url.clone(),
        alert_settings,
    )
    .await;
    let third = spawn_app_on(
        first.database.clone(),
        first.database_url.clone(),
        alert_settings,
    )
    .await;
    add_channel(&first, "ops").await;
    add_channel(&first, "pager").await;
    let mut rules = Vec::new();
    for n in 0..12 {
        rules.push(
            create_rule(
                &first,
                json!({"name": format!("rule {n}"), "kind": "count", "threshold": 0,
                       "window": "3s", "interval": "1s", "search": {"service": format!("s{n}")},
                       "channels": ["ops", "pager"]}),
            )
            .await,
        );
    }
    for n in 0..12 {
        let app = [&first, &second, &third][n % 3];
        send_errors(app, &format!("s{n}"), 1).await;
    }
    for rule in &rules {
        wait_for(30, "every rule fired and resolved", || async {
            notified(&first, *rule).await.len() >= 4
        })
        .await;
    }
    evaluations_pass(&first, rules[rules.len() - 1], 2).await;
    for rule in &rules {
        assert_eq!(
            notified(&first, *rule).await,
            ["firing", "firing", "resolved", "resolved"],
            "rule {rule}"
        );
    }
    let (mut second, mut third) = (second, third);
    second.stop().await;
    third.stop().await;
    first.stop_and_drop_database().await;
}
