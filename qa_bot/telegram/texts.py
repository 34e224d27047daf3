"""Everything the bot says, in one place so wording changes never touch the logic."""

from __future__ import annotations

from telegram import BotCommand

TEXT_REFUSED_CHAT = "抱歉，此机器人未对本聊天开放。"
TEXT_ABSTAIN = "新闻库中没有找到能回答这个问题的内容。"
TEXT_NON_TEXT = "抱歉，我只能回答文字问题。请直接用文字提问，例如：央行最近一次降准是什么时候？"
TEXT_EMPTY = "请告诉我您的问题，例如：/ask 央行最近一次降准是什么时候？"
# The limit is what the model reads of a question; the user learns both numbers so they
# know how much to cut.
TEXT_TOO_LONG = "问题太长了：{length} 字，最多 {limit} 字（更长的部分模型读不到）。请精简后再问。"
TEXT_UNKNOWN_COMMAND = "抱歉，我不认识这个命令。发送 /help 查看用法。"
# Sent once per refused stretch, so it must say that the following messages are dropped.
TEXT_RATE_LIMITED = (
    "您提问太频繁了（每分钟最多 {limit} 个问题），请 {wait} 秒后再试；在此之前发送的问题不会被回答。"
)
TEXT_ERROR = "抱歉，处理您的请求时出错了，请稍后再试。"
TEXT_EXPIRED = "这条回答已过期，请重新提问。"
TEXT_NOT_ADMIN = "抱歉，只有管理员可以更新索引。"
TEXT_REINDEX_BUSY = "索引正在更新中，请稍候。"
TEXT_REINDEX_START = "正在更新索引，请稍候……"
TEXT_REINDEX_FAILED = "索引更新失败，请查看日志。"
TEXT_NO_ARTICLES = "新闻库中还没有文章。"
TEXT_SHUTTING_DOWN = "机器人正在重启，这个问题没能回答完，请稍后再问一次。"

PUBLIC_COMMANDS = (
    BotCommand("ask", "提问，例如 /ask 央行最近一次降准是什么时候？"),
    BotCommand("latest", "最新收录的文章"),
    BotCommand("stats", "新闻库统计"),
    BotCommand("help", "使用说明"),
)
ADMIN_COMMANDS = (*PUBLIC_COMMANDS, BotCommand("reindex", "更新索引（仅管理员）"))

EXAMPLE_QUESTIONS = (
    "央行最近一次降准是什么时候？",
    "2021年12月的一年期LPR是多少？",
    "恒大的债务问题有什么新进展？",
)
