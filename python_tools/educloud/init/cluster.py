"""Group variables of the services that only a cluster has, or that differ with the topology:
the load balancers, etcd and Redis (local on one server, with Sentinel in a region)."""

from __future__ import annotations

from educloud.init.answers import Answers
from educloud.init.yamltext import _header, q


def load_balancer_vars(answers: Answers) -> str:
    def servers(group: str, port: int) -> str:
        return (
            "    servers: >-\n"
            f"      {{{{ groups['{group}'] | map('community.general.dict_kv', 'name')\n"
            f"      | zip(groups['{group}']\n"
            "      | map('extract', hostvars, 'educloud_private_address')\n"
            "      | map('community.general.dict_kv', 'address')) | map('combine')"
            f" | map('combine', {{'port': {port}}}) | list }}}}\n"
        )

    text = _header("HAProxy and keepalived on the load balancers (C10).")
    text += (
        "# The floating address is held by one load balancer (VRRP on the private network); the\n"
        "# other takes it over within seconds.\n"
        'load_balancer_vip: "{{ regional_load_balancer_address }}"\n'
        f"load_balancer_vrrp_interface: {q(answers.vrrp_interface)}\n"
        'load_balancer_vrrp_password: "{{ vault_vrrp_password }}"\n'
        "load_balancer_http_frontends:\n"
        "  - name: keycloak\n"
        "    bind_address: 127.0.0.1\n"
        "    bind_port: 8180\n"
        "    health_path: /health/ready\n"
        "    health_port: 9000\n" + servers("keycloak", 8080) + "  - name: nextcloud\n"
        "    bind_address: 127.0.0.1\n"
        "    bind_port: 8181\n"
        "    health_path: /status.php\n"
        "    health_port: 8081\n" + servers("nextcloud", 8081) + "load_balancer_tcp_frontends:\n"
        "  - name: postgresql\n"
        '    bind_address: "{{ regional_load_balancer_address }}"\n'
        "    bind_port: 5432\n"
        "    check: patroni_primary\n"
        "    check_port: 8008\n"
        "    allowed_addresses: >-\n"
        "      {{ (groups['keycloak'] + groups['nextcloud'] + groups['data_rights'])\n"
        "      | map('extract', hostvars, 'educloud_private_address') | unique | list }}\n"
        + servers("postgresql", 5432)
        + "  - name: redis\n"
        '    bind_address: "{{ regional_load_balancer_address }}"\n'
        "    bind_port: 6379\n"
        "    check: redis_master\n"
        "    allowed_addresses: \"{{ groups['nextcloud'] | map('extract', hostvars,"
        " 'educloud_private_address') | list }}\"\n"
        + servers("redis", 6379)
        + 'load_balancer_redis_password: "{{ vault_redis_password }}"\n'
    )
    return text


def etcd_vars(answers: Answers) -> str:
    return _header("etcd: Patroni's consensus store on the database hosts.") + (
        f"etcd_cluster_name: {q(f'educloud-{answers.realm}')}\n"
    )


def redis_vars(answers: Answers) -> str:
    if not answers.regional:
        return _header("Redis: the server's own, for Nextcloud on the same host.") + (
            "# Local mode: the unix socket only (no TCP port, no Sentinel, nothing opened in the\n"
            "# firewall); nextcloud_redis_password takes the same vault secret.\n"
            "redis_mode: local\n"
            'redis_password: "{{ vault_redis_password }}"\n'
        )
    return _header("Redis with Sentinel on the database hosts.") + (
        'redis_password: "{{ vault_redis_password }}"\n'
        "# CONFIG's name, known to the database hosts and their Sentinels only.\n"
        'redis_config_command: "{{ vault_redis_config_command }}"\n'
        "redis_client_allowed_addresses: \"{{ groups['load_balancer'] | map('extract', hostvars,"
        " 'educloud_private_address') | list }}\"\n"
    )
